package version

import (
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestStringNamesVersionCommitAndGo(t *testing.T) {
	oldV, oldC := Version, Commit
	t.Cleanup(func() { Version, Commit = oldV, oldC })
	Version, Commit = "1.2.3", "abc1234"
	want := "uplinkd 1.2.3 (commit abc1234, " + runtime.Version() + ")"
	if got := String("uplinkd"); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestStringWithoutLinkerFlags(t *testing.T) {
	oldC := Commit
	t.Cleanup(func() { Commit = oldC })
	Commit = ""
	got := String("uplinkctl")
	if !regexp.MustCompile(`^uplinkctl \S+ \(commit \S+, go\S+\)$`).MatchString(got) {
		t.Errorf("String() = %q", got)
	}
	if strings.Contains(got, "commit ,") {
		t.Errorf("empty commit in %q", got)
	}
}
