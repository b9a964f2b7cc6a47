package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	childSocketEnv = "UPLINKD_CONTROL_TEST_CHILD_SOCKET"
	nobody         = 65534
)

// childResult is what the unprivileged child reports back on stdout.
type childResult struct {
	StatusErr string `json:"status_err"`
	StatusOK  bool   `json:"status_ok"`
	DrainErr  string `json:"drain_err"`
	DrainPerm bool   `json:"drain_perm"`
	ReloadErr string `json:"reload_err"`
}

// TestChildClient is not a test on its own: the peer tests run it as uid 65534.
func TestChildClient(t *testing.T) {
	socket := os.Getenv(childSocketEnv)
	if socket == "" {
		t.Skip("helper: runs only as the unprivileged child of the peer credential tests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := NewClient(socket)
	var r childResult
	if _, err := c.Status(ctx); err != nil {
		r.StatusErr = err.Error()
	} else {
		r.StatusOK = true
		err := c.Drain(ctx, "isp1", true)
		r.DrainErr, r.DrainPerm = fmt.Sprint(err), errors.Is(err, ErrPermission)
		r.ReloadErr = fmt.Sprint(c.Reload(ctx))
	}
	b, _ := json.Marshal(r)
	fmt.Printf("\nCHILD %s\n", b)
}

// TestPeerCredentials runs the client half as uid 65534 against the real policy.
func TestPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs a client as another uid to check SO_PEERCRED")
	}
	nogroup, err := user.LookupGroupId(fmt.Sprint(nobody))
	if err != nil {
		t.Skipf("no group %d to give the socket to: %v", nobody, err)
	}

	// The child must reach both the socket and a copy of this test binary: the build directory
	// is root's own.
	dir := shortTempDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "control.test")
	copyExecutable(t, bin)

	tests := []struct {
		name  string
		group string
		check func(t *testing.T, r childResult)
	}{
		{
			name: "a group member reads the status but may not change anything", group: nogroup.Name,
			check: func(t *testing.T, r childResult) {
				if !r.StatusOK {
					t.Fatalf("status as uid %d: %s", nobody, r.StatusErr)
				}
				want := fmt.Sprintf("changing uplinkd needs root; you are uid %d", nobody)
				if r.DrainErr != want || !r.DrainPerm || r.ReloadErr != want {
					t.Errorf("drain: %q (ErrPermission %v), reload: %q; want %q", r.DrainErr, r.DrainPerm, r.ReloadErr, want)
				}
			},
		},
		{
			name: "a stranger cannot open a root-only socket and is told why", group: "",
			check: func(t *testing.T, r childResult) {
				if r.StatusOK || !strings.HasPrefix(r.StatusErr, "permission denied on ") || !strings.Contains(r.StatusErr, "join the socket's group") {
					t.Errorf("status as uid %d on a 0600 socket: %q, want permission denied", nobody, r.StatusErr)
				}
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			socket := filepath.Join(dir, fmt.Sprintf("s%d", i), "u.sock")
			ln, err := Listen(socket, tt.group, nil)
			if err != nil {
				t.Fatal(err)
			}
			serveOn(t, ln, NewServer(f, testLogger(t)))

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "-test.run=^TestChildClient$", "-test.v")
			cmd.Env = []string{childSocketEnv + "=" + socket, "PATH=/usr/bin:/bin"}
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("child: %v\n%s", err, out.String())
			}
			_, line, ok := strings.Cut(out.String(), "\nCHILD ")
			var r childResult
			if !ok || json.Unmarshal([]byte(strings.SplitN(line, "\n", 2)[0]), &r) != nil {
				t.Fatalf("child said nothing readable:\n%s", out.String())
			}
			tt.check(t, r)
			if _, drained := f.lastDrain(); drained || f.reloads != 0 {
				t.Error("a change by uid 65534 reached the backend")
			}
		})
	}
}

func copyExecutable(t *testing.T, dst string) {
	t.Helper()
	src, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
