package main

import (
	"flag"
	"os"

	"github.com/stackgap/stackgap/results"
)

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("stackgap report", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return exitError{code: 2}
	}
	if fs.NArg() != 1 {
		return usageError("report takes one run directory")
	}
	r, err := results.Load(fs.Arg(0))
	if err != nil {
		return err
	}
	results.PrintTable(os.Stdout, r)
	return nil
}
