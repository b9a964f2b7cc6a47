package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/uplinkd/uplinkd/internal/version"
)

// The command-line conventions a packager and an operator expect: help that was asked for goes
// to stdout and succeeds; --version names the version, the commit and the Go release.

func TestHelpGoesToStdoutAndSucceeds(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		t.Run(arg, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run([]string{arg}, &out, &errOut)
			if code != 0 {
				t.Errorf("exit %d, want 0", code)
			}
			if errOut.Len() > 0 {
				t.Errorf("stderr is not empty: %q", errOut.String())
			}
			for _, want := range []string{"usage: uplinkd", "-config file", "-check", "-probe", "-cleanup", "-version", "--help"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("help lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestUsageErrorsGoToStderrWithExit2(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"--frobnicate"}, &out, &errOut)
	if code != 2 || out.Len() > 0 || !strings.Contains(errOut.String(), "usage: uplinkd") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}

func TestProbeWithoutCheckIsAUsageError(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--probe"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--probe goes with --check") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestVersionNamesVersionCommitAndGo(t *testing.T) {
	oldV, oldC := version.Version, version.Commit
	t.Cleanup(func() { version.Version, version.Commit = oldV, oldC })
	version.Version, version.Commit = "1.2.3", "abc1234"

	var out, errOut bytes.Buffer
	if code := run([]string{"--version"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	want := "uplinkd 1.2.3 (commit abc1234, " + runtime.Version() + ")\n"
	if out.String() != want {
		t.Errorf("--version printed %q, want %q", out.String(), want)
	}
}
