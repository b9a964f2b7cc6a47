package netlab

import (
	"strings"
	"testing"
)

func TestPairScripts(t *testing.T) {
	a, b := newBoxPaths("/run/x/gw-a"), newBoxPaths("/run/x/gw-b")
	ka := pairKeepalivedConf(a, true)
	if !strings.Contains(ka, "/run/x/gw-a/vrrp-priority") || !strings.Contains(ka, `"/run/x/gw-a/notify.sh primary"`) {
		t.Errorf("keepalived.conf paths not substituted:\n%s", ka)
	}
	if strings.Contains(pairKeepalivedConf(a, false), "notify_") {
		t.Error("notify scripts kept without conntrackd")
	}
	cb := pairConntrackdConf(b, BoxB)
	if !strings.Contains(cb, "IPv4_address 192.0.2.138\n") || !strings.Contains(cb, "IPv4_Destination_Address 192.0.2.137\n") {
		t.Errorf("gw-b's sync addresses not swapped:\n%s", cb)
	}
	if !strings.Contains(cb, "/run/x/gw-b/conntrackd.ctl") || !strings.Contains(cb, "LogFile /run/x/gw-b/conntrackd.log") {
		t.Errorf("conntrackd paths:\n%s", cb)
	}
	n := pairNotify(a)
	if strings.Contains(n, "systemctl") && !strings.Contains(n, `RESTART_CONNTRACKD=""`) {
		t.Errorf("the lab's notify script may restart the machine's conntrackd:\n%s", n)
	}
	if all := pairNft(PairNATAll); !strings.Contains(all, `oifname "wan1" snat ip to 198.51.100.10`) || strings.Contains(all, `iifname "lan0" oifname "wan1" ip saddr`) {
		t.Errorf("NAT-all variant:\n%s", all)
	}
	if !strings.Contains(pairLinkScript(BoxA, func(r string) string { return "p-" + r }), "link add sync") {
		t.Error("no sync link from gw-a")
	}
}

// TestPairBasics: the pair comes up with gw-a as master and the LAN reaches the internet
// through the VIPs.
