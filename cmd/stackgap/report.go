package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/stackgap/stackgap/internal/cli"
	"github.com/stackgap/stackgap/results"
)

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("stackgap report", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: stackgap report DIR\n\nPrints the tables of the run directory DIR (written by stackgap run or demo) again.")
	}
	if err := cli.ParseFlags(fs, args); err != nil {
		return flagError(err)
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
