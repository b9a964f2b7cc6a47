package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The shell completions of uplinkctl: valid syntax in each shell, the commands and flags that
// uplinkctl has, and uplink names from the daemon.

const (
	bashCompletion = "completions/uplinkctl.bash"
	zshCompletion  = "completions/_uplinkctl"
	fishCompletion = "completions/uplinkctl.fish"
)

func TestCompletionSyntax(t *testing.T) {
	for _, tt := range []struct{ shell, file string }{
		{"bash", bashCompletion},
		{"zsh", zshCompletion},
		{"fish", fishCompletion},
	} {
		t.Run(tt.shell, func(t *testing.T) {
			sh, err := exec.LookPath(tt.shell)
			if err != nil {
				t.Skipf("%s is not installed: cannot check the syntax of %s", tt.shell, tt.file)
			}
			flag := "-n"
			if tt.shell == "fish" {
				flag = "--no-execute"
			}
			if out, err := exec.Command(sh, flag, tt.file).CombinedOutput(); err != nil || len(out) > 0 {
				t.Errorf("%s %s %s: %v\n%s", tt.shell, flag, tt.file, err, out)
			}
		})
	}
}

// TestCompletionsKnowEveryCommand compares the completions with uplinkctl's own usage.
func TestCompletionsKnowEveryCommand(t *testing.T) {
	src := readFile(t, "../cmd/uplinkctl/main.go")
	start, end := strings.Index(src, "\ncommands:\n"), strings.Index(src, "\nglobal flags:\n")
	if start < 0 || end < start {
		t.Fatal("cannot find the command list in cmd/uplinkctl/main.go's usage: update this test")
	}
	var commands []string
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)`).FindAllStringSubmatch(src[start:end], -1) {
		commands = append(commands, m[1])
	}
	if len(commands) < 8 {
		t.Fatalf("found only %v in uplinkctl's usage", commands)
	}
	words := append(commands, "--socket", "--version", "--help", "--json", "--now", "__complete-uplinks")
	for _, file := range []string{bashCompletion, zshCompletion, fishCompletion} {
		text := readFile(t, file)
		for _, w := range words {
			if w == "__complete-uplinks" && !strings.Contains(src, `completeUplinks = "__complete-uplinks"`) {
				t.Fatal("uplinkctl no longer has __complete-uplinks: update the completions")
			}
			plain := strings.TrimPrefix(w, "--")
			if !strings.Contains(text, w) && !strings.Contains(text, "-l "+plain) {
				t.Errorf("%s does not complete %s", file, w)
			}
		}
	}
}

// TestBashCompletion drives the bash completion function the way bash does, with an uplinkctl
// stub that answers __complete-uplinks.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	bin := t.TempDir()
	stub := "#!/bin/sh\n" +
		"echo \"$*\" >>" + filepath.Join(bin, "calls") + "\n" +
		"for a; do [ \"$a\" = __complete-uplinks ] && printf 'isp1\\nisp2\\n'; done\n" +
		"exit 0\n"
	if err := os.WriteFile(filepath.Join(bin, "uplinkctl"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(bashCompletion)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		line []string // the words; the last is being completed
		want string
	}{
		{[]string{"uplinkctl", ""}, "status events drain undrain reload standby active check-config version help"},
		{[]string{"uplinkctl", "dr"}, "drain"},
		{[]string{"uplinkctl", "--"}, "--socket --version --help"},
		{[]string{"uplinkctl", "status", "--"}, "--json --watch --help"},
		{[]string{"uplinkctl", "drain", ""}, "isp1 isp2"},
		{[]string{"uplinkctl", "drain", "--"}, "--now --help"},
		{[]string{"uplinkctl", "--socket", "/run/x.sock", "undrain", "isp2"}, "isp2"},
		{[]string{"uplinkctl", "help", "re"}, "reload"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.line, " "), func(t *testing.T) {
			args := append([]string{"--norc", "--noprofile", "-c",
				`source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _uplinkctl; echo "${COMPREPLY[*]}"`,
				script}, tt.line...)
			cmd := exec.Command(bash, args...)
			cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if got := strings.TrimSpace(string(out)); err != nil || got != tt.want || stderr.Len() > 0 {
				t.Errorf("got %q (%v, stderr %q), want %q", got, err, stderr.String(), tt.want)
			}
		})
	}
	calls := readFile(t, filepath.Join(bin, "calls"))
	if !strings.Contains(calls, "--socket /run/x.sock __complete-uplinks") {
		t.Errorf("the --socket on the command line was not passed on: %q", calls)
	}
}
