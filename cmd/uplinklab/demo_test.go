package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/testkit"
)

func TestDemoAndBenchAreCommands(t *testing.T) {
	for _, name := range []string{"demo", "bench"} {
		if commands[name] == nil {
			t.Errorf("no command %q", name)
		}
	}
}

func TestDescribeEventReadsAsASentence(t *testing.T) {
	tests := []struct {
		name string
		ev   api.Event
		want string
	}{
		{"a state change with its reason", api.Event{Kind: api.KindState, Uplink: "isp1", From: "up", To: "down", Reason: "carrier lost on wan1"},
			"isp1 up → down (carrier lost on wan1)"},
		{"an active change with the switch time", api.Event{Kind: api.KindActive, From: "isp1", To: "isp2", Reason: "best tier that is up", Took: 12345 * time.Microsecond},
			"traffic moves isp1 → isp2 (best tier that is up; switch took 12.35ms)"},
		{"the first active set", api.Event{Kind: api.KindActive, To: "isp1", Reason: "start"},
			"traffic moves (none) → isp1 (start; switch took 0s)"},
		{"another kind", api.Event{Kind: api.KindDrain, Uplink: "isp2", Reason: "operator"},
			"drain isp2: operator"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describeEvent(tt.ev); got != tt.want {
				t.Errorf("describeEvent = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTimelineStampsEachLineWithTheSecondsSinceTheStart(t *testing.T) {
	var b bytes.Buffer
	tl := &timeline{w: &b, start: time.Now()}
	tl.say("breaking %s", "isp1")
	if got := b.String(); !strings.HasSuffix(got, "s  breaking isp1\n") || !strings.HasPrefix(strings.TrimSpace(got), "0.0") {
		t.Errorf("timeline line %q, want \"  0.00s  breaking isp1\"", got)
	}
}

// The demo runs both steps to the end, with and without a picture: the README's command has
// no -svg (it once panicked there after the first step).
func TestFastDemoFailsOverFailsBackAndRemovesItsLab(t *testing.T) {
	testkit.NeedRoot(t)
	bin := testBinary(t)
	for _, drawn := range []bool{false, true} {
		t.Run(map[bool]string{false: "as the README runs it", true: "drawn with -svg"}[drawn], func(t *testing.T) {
			prefix := uniquePrefix("uldemo")
			args := []string{"-fast", "-hold", "500ms", "-uplinkd", bin, "-prefix", prefix}
			picture := filepath.Join(t.TempDir(), "demo.svg")
			if drawn {
				args = append(args, "-svg", picture)
			}
			var out bytes.Buffer
			err := runDemo(context.Background(), args, &out)
			t.Logf("demo output:\n%s", out.String())
			if err != nil {
				t.Fatalf("demo failed: %v", err)
			}
			svg, err := os.ReadFile(picture)
			switch {
			case !drawn && err == nil:
				t.Errorf("demo without -svg drew a picture")
			case drawn && err != nil:
				t.Fatalf("demo -svg wrote no picture: %v", err)
			case drawn:
				if err := xml.Unmarshal(svg, new(struct{ XMLName xml.Name })); err != nil || strings.Count(string(svg), ">cut<") != 2 {
					t.Errorf("the picture is not well-formed SVG with both cuts marked: %v", err)
				}
			}
			text := out.String()
			for _, want := range []string{
				"breaking isp1 silently", "failover: isp2 carries the traffic", "failback: isp1 carries the traffic again",
				"pulling isp1's cable", "── summary ──", "silent failure: failover", "carrier loss:   failover",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("the demo never said %q", want)
				}
			}
			if n := strings.Count(text, "failover: isp2 carries"); n != 2 {
				t.Errorf("%d failovers narrated, want 2", n)
			}
			if left := labNamespaces(t, prefix); len(left) > 0 {
				t.Errorf("the demo left namespaces behind: %v", left)
			}
		})
	}
}

// demo -ipv6 narrates the client moving between the ISPs' prefixes and back, and cleans up.
func TestIPv6DemoMovesTheClientBetweenPrefixes(t *testing.T) {
	testkit.NeedRoot(t)
	bin := testBinary(t)
	prefix := uniquePrefix("uldemo6")
	var out bytes.Buffer
	err := runDemo(context.Background(), []string{"-ipv6", "-fast", "-hold", "500ms", "-uplinkd", bin, "-prefix", prefix}, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo -ipv6 failed: %v", err)
	}
	for _, want := range []string{"isp1's prefix deprecated", "NPTv6 into isp2's prefix", "preferred again", "still answers"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo never said %q", want)
		}
	}
	if left := labNamespaces(t, prefix); len(left) > 0 {
		t.Errorf("the demo left namespaces behind: %v", left)
	}
	if err := runDemo(context.Background(), []string{"-ipv6", "-svg", "x.svg"}, &out); err == nil {
		t.Error("demo -ipv6 -svg accepted; it draws the IPv4 demo only")
	}
}
