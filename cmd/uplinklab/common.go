package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
)

// defaultPrefix names the CLI's lab: ullab-gw, ullab-isp1, ...
const defaultPrefix = "ullab"

// newFlags returns a flag set with the -prefix flag every command has.
func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("uplinklab "+name, flag.ContinueOnError)
	prefix := fs.String("prefix", defaultPrefix, "namespace name prefix of the lab")
	return fs, prefix
}

// parseISP reads "1", "2", "isp1" or "isp2".
func parseISP(arg string) (int, error) {
	s := arg
	if len(s) > 3 && s[:3] == "isp" {
		s = s[3:]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 2 {
		return 0, fmt.Errorf("ISP %q: want 1, 2, isp1 or isp2", arg)
	}
	return n, nil
}

func needRoot() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root: builds network namespaces")
	}
	return nil
}
