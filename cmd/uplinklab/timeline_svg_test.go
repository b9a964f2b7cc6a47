package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/internal/netlab"
	"github.com/uplinkd/uplinkd/uplink"
)

func sampleTimeline() timelineData {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	return timelineData{
		Title: "silent/masquerade/default <&>", Start: t0, End: at(9000),
		Marks:   []timeMark{{at(1000), "cut"}, {at(4000), "heal"}},
		Uplinks: []string{"isp1", "isp2"},
		Initial: map[string]uplink.State{"isp1": uplink.Up, "isp2": uplink.Up},
		Active:  []string{"isp1"},
		Events: []api.Event{
			{Time: at(-500), Kind: api.KindActive, Active: []string{"isp1"}},
			{Time: at(3100), Kind: api.KindState, Uplink: "isp1", From: "up", To: "down"},
			{Time: at(3110), Kind: api.KindActive, Active: []string{"isp2"}},
			{Time: at(8800), Kind: api.KindState, Uplink: "isp1", From: "down", To: "up"},
			{Time: at(8810), Kind: api.KindActive, Active: []string{"isp1"}},
		},
		Outages: []netlab.Outage{{Start: at(1000), End: at(3120), Lost: 212}},
		RTT: map[string][]rttSample{
			"isp1": {{at(100), 2 * time.Millisecond}, {at(600), 3 * time.Millisecond}},
			"isp2": {{at(100), 5 * time.Millisecond}, {at(600), 4 * time.Millisecond}},
		},
	}
}

func TestTheTimelineIsWellFormedSVGWithEveryLane(t *testing.T) {
	var buf bytes.Buffer
	if err := writeTimelineSVG(&buf, sampleTimeline()); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(buf.Bytes()))
	ids := map[string]bool{}
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, buf.String())
		}
		if se, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = se.Name.Space + " " + se.Name.Local
			}
			for _, a := range se.Attr {
				if a.Name.Local == "id" {
					ids[a.Value] = true
				}
			}
		}
	}
	if root != "http://www.w3.org/2000/svg svg" {
		t.Errorf("root element %q, want svg in the SVG namespace", root)
	}
	for _, lane := range []string{"lane-isp1", "lane-isp2", "lane-active", "lane-flow", "rtt"} {
		if !ids[lane] {
			t.Errorf("no %s lane", lane)
		}
	}
	for _, want := range []string{"2.12s", "isp1: down", "&lt;&amp;&gt;", "polyline"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the picture lacks %q", want)
		}
	}
}

func TestAnEmptyTimeSpanIsRefused(t *testing.T) {
	d := sampleTimeline()
	d.End = d.Start
	if err := writeTimelineSVG(io.Discard, d); err == nil {
		t.Error("a timeline without time was drawn")
	}
}
