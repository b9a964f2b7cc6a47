package uplink

import (
	"slices"
	"testing"
)

func TestSelect(t *testing.T) {
	c := func(name string, prio, weight int, s State, drained bool) Candidate {
		return Candidate{Name: name, Priority: prio, Weight: weight, State: s, Drained: drained}
	}
	tests := []struct {
		name  string
		cands []Candidate
		want  []string
	}{
		{"the primary tier carries traffic while it is up",
			[]Candidate{c("isp1", 1, 1, Up, false), c("isp2", 2, 1, Up, false)}, []string{"isp1"}},
		{"traffic fails over to tier 2 when tier 1 is down",
			[]Candidate{c("isp1", 1, 1, Down, false), c("isp2", 2, 1, Up, false)}, []string{"isp2"}},
		{"traffic fails back to tier 1 when it is up again",
			[]Candidate{c("isp1", 1, 1, Up, false), c("isp2", 2, 1, Up, false), c("isp3", 3, 1, Up, false)}, []string{"isp1"}},
		{"every up member of the best tier shares the traffic",
			[]Candidate{c("isp1", 1, 3, Up, false), c("isp2", 1, 1, Up, false), c("isp3", 2, 1, Up, false)}, []string{"isp1", "isp2"}},
		{"a down member of a tier leaves the others to carry it",
			[]Candidate{c("isp1", 1, 3, Down, false), c("isp2", 1, 1, Up, false)}, []string{"isp2"}},
		{"an up backup beats a degraded primary",
			[]Candidate{c("isp1", 1, 1, Degraded, false), c("isp2", 2, 1, Up, false)}, []string{"isp2"}},
		{"a degraded uplink beats a down one",
			[]Candidate{c("isp1", 1, 1, Down, false), c("isp2", 2, 1, Degraded, false)}, []string{"isp2"}},
		{"when everything is down the primary tier keeps the route",
			[]Candidate{c("isp1", 1, 1, Down, false), c("isp2", 2, 1, Down, false)}, []string{"isp1"}},
		{"a drained uplink is never selected while another can carry traffic",
			[]Candidate{c("isp1", 1, 1, Up, true), c("isp2", 2, 1, Degraded, false)}, []string{"isp2"}},
		{"a drained uplink carries traffic when nothing else can",
			[]Candidate{c("isp1", 1, 1, Up, true), c("isp2", 2, 1, Down, false)}, []string{"isp1"}},
		{"when everything is down a drained primary is not preferred",
			[]Candidate{c("isp1", 1, 1, Down, true), c("isp2", 2, 1, Down, false)}, []string{"isp2"}},
		{"uplinks not yet judged carry traffic before down ones",
			[]Candidate{c("isp1", 1, 1, Down, false), c("isp2", 2, 1, Unknown, false)}, []string{"isp2"}},
		{"a single drained uplink keeps the route",
			[]Candidate{c("isp1", 1, 1, Down, true)}, []string{"isp1"}},
		{"no uplinks select nothing", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Select(tt.cands)
			if names := Names(got); !slices.Equal(names, tt.want) && !(len(names) == 0 && len(tt.want) == 0) {
				t.Errorf("got %v (%s), want %v", names, why, tt.want)
			}
		})
	}
}

func TestSelectKeepsWeights(t *testing.T) {
	got, _ := Select([]Candidate{{Name: "a", Priority: 1, Weight: 3, State: Up}, {Name: "b", Priority: 1, Weight: 1, State: Up}})
	if len(got) != 2 || got[0].Weight != 3 || got[1].Weight != 1 {
		t.Errorf("got %+v", got)
	}
}
