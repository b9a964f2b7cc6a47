package main

import (
	"context"
	"fmt"

	"github.com/uplinkd/uplinkd/internal/netlab"
)

// cmdBreak makes an uplink of a running lab fail: `uplinklab break isp1 silent`.
func cmdBreak(ctx context.Context, args []string) error {
	fs, prefix := newFlags("break")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("usage: uplinklab break [-prefix P] ISP FAULT (FAULT: silent, carrier, loss30, loss19, loss10, ipv6-silent)")
	}
	isp, err := parseISP(fs.Arg(0))
	if err != nil {
		return err
	}
	fault, err := netlab.ParseFault(fs.Arg(1))
	if err != nil {
		return err
	}
	l, err := netlab.Attach(*prefix, "")
	if err != nil {
		return err
	}
	if err := l.Break(isp, fault); err != nil {
		return err
	}
	fmt.Printf("isp%d: %s\n", isp, fault)
	return nil
}

// cmdHeal undoes every fault of an uplink: `uplinklab heal isp1`.
func cmdHeal(ctx context.Context, args []string) error {
	fs, prefix := newFlags("heal")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: uplinklab heal [-prefix P] ISP")
	}
	isp, err := parseISP(fs.Arg(0))
	if err != nil {
		return err
	}
	l, err := netlab.Attach(*prefix, "")
	if err != nil {
		return err
	}
	if err := l.Heal(isp); err != nil {
		return err
	}
	fmt.Printf("isp%d: healed\n", isp)
	return nil
}
