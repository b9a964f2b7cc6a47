package packaging

import (
	"os/exec"
	"strings"
	"testing"
)

// TestChangelogParses runs dpkg's own parser on the changelog build.sh turns into the
// package's changelog.gz.
func TestChangelogParses(t *testing.T) {
	parse, err := exec.LookPath("dpkg-parsechangelog")
	if err != nil {
		t.Skip("dpkg-parsechangelog is not installed (dpkg-dev): cannot check packaging/changelog")
	}
	out, err := exec.Command(parse, "-l", "changelog", "--all").CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning") {
		t.Fatalf("dpkg-parsechangelog: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "Source: uplinkd\n") {
		t.Errorf("the changelog is not uplinkd's:\n%s", out)
	}
}
