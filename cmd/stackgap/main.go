// Command stackgap is the sender and the offline tools of stackgap.
//
//	stackgap run --peer HOST[:PORT] [flags]   measure against a stackgap-reflect
//	stackgap demo [--duration D]              two hosts from network namespaces, every path and transport
//	stackgap report DIR                       print a run directory's tables again
//	stackgap version
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/stackgap/stackgap/internal/cli"
	"github.com/stackgap/stackgap/internal/version"
)

const prog = "stackgap"

const usage = `usage: stackgap <command> [flags]

commands:
  run      measure kernel (and bypass) round trips against a stackgap-reflect peer
  demo     build two test hosts from network namespaces and run every path and transport
  report   print the tables of a run directory
  version  print the version

Run 'stackgap <command> -h' for the command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(args)
	case "demo":
		err = demoCmd(args)
	case "report":
		err = reportCmd(args)
	case "version", "--version", "-version":
		fmt.Println(prog, version.String())
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		cli.Fatal(prog, 2, fmt.Errorf("unknown command %q ('stackgap help' lists the commands)", os.Args[1]))
	}
	if err != nil {
		code := 1
		if e, ok := err.(exitError); ok {
			code = e.code
			err = e.err
		}
		if err != nil {
			cli.Fatal(prog, code, err)
		}
		os.Exit(code)
	}
}

// exitError carries an exit code: 2 for bad usage, 130 for an interrupted run.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

// flagError turns cli.ParseFlags's error into the command's exit: 0 after
// help, 2 with the one-line message otherwise.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return exitError{code: 0}
	}
	return exitError{code: 2, err: err}
}

func usageError(format string, args ...any) error {
	return exitError{code: 2, err: fmt.Errorf(format, args...)}
}
