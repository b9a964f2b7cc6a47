package main

import (
	"context"
	"fmt"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// cmdDown removes a lab that `up` left behind.
func cmdDown(ctx context.Context, args []string) error {
	fs, prefix := newFlags("down")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := needRoot(); err != nil {
		return err
	}
	l, err := netlab.Attach(*prefix, "")
	if err != nil {
		return err
	}
	if err := l.Close(); err != nil {
		return err
	}
	fmt.Printf("lab %q removed\n", *prefix)
	return nil
}
