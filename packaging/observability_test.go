package packaging

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/internal/metrics"
)

// The Grafana dashboard and the alert rules are checked against the metrics uplinkd exports:
// a renamed metric breaks this test, not a dashboard at 3 a.m.

const (
	dashboardFile = "grafana/uplinkd.json"
	rulesFile     = "prometheus/uplinkd-alerts.yml"
)

var metricName = regexp.MustCompile(`\b(uplinkd_[a-z0-9_]+)`)

// usedMetrics returns each uplinkd_ metric an expression names, histogram series mapped to
// their family.
func usedMetrics(exprs []string) []string {
	var out []string
	for _, e := range exprs {
		for _, m := range metricName.FindAllStringSubmatch(e, -1) {
			name := m[1]
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(metrics.Names, base) {
					name = base
				}
			}
			out = append(out, name)
		}
	}
	return out
}

// dashboardExprs collects every "expr" in the dashboard JSON, wherever it is.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal([]byte(readFile(t, dashboardFile)), &doc); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				if s, ok := val.(string); ok && k == "expr" {
					out = append(out, s)
				}
				walk(val)
			}
		case []any:
			for _, val := range x {
				walk(val)
			}
		}
	}
	walk(doc)
	return out
}

// rulesExprs reads the expr: lines of the rules file (one line each, as written there).
func rulesExprs(t *testing.T) []string {
	t.Helper()
	var out []string
	for line := range strings.Lines(readFile(t, rulesFile)) {
		if _, expr, ok := strings.Cut(line, "expr: "); ok {
			out = append(out, strings.TrimSpace(expr))
		}
	}
	return out
}

func TestDashboardAndRulesUseOnlyExportedMetrics(t *testing.T) {
	for name, exprs := range map[string][]string{dashboardFile: dashboardExprs(t), rulesFile: rulesExprs(t)} {
		if len(exprs) < 5 {
			t.Errorf("%s: found only %d expressions", name, len(exprs))
		}
		for _, m := range usedMetrics(exprs) {
			if !slices.Contains(metrics.Names, m) {
				t.Errorf("%s uses %s, which uplinkd does not export (internal/metrics.Names)", name, m)
			}
		}
	}
}

func TestDashboardShowsWhatAnOperatorAsks(t *testing.T) {
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(readFile(t, dashboardFile)), &d); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range usedMetrics([]string{tg.Expr}) {
				used[m] = true
			}
		}
	}
	for _, m := range []string{metrics.UplinkState, metrics.UplinkActive, metrics.UplinkRTT, metrics.UplinkLoss, metrics.TransitionsTotal, metrics.SwitchDuration, metrics.UplinkConnections} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid: links to it would break on import")
	}
}

func TestRulesCoverTheFailuresAndPassPromtool(t *testing.T) {
	text := readFile(t, rulesFile)
	for _, alert := range []string{"UplinkdUplinkDown", "UplinkdNoUplinkCarriesTraffic", "UplinkdUplinkFlapping", "UplinkdHighLoss"} {
		if !strings.Contains(text, "alert: "+alert+"\n") {
			t.Errorf("%s has no alert %s", rulesFile, alert)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus): the rules are not checked by it")
	}
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	if _, err := os.Stat(dashboardFile); err != nil {
		t.Fatal(err)
	}
}
