package control

import (
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestListen(t *testing.T) {
	myGroup, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err != nil {
		t.Skipf("cannot name my own group: %v", err)
	}
	tests := []struct {
		name     string
		group    string
		before   func(t *testing.T, path string) // what is at the path already
		wantMode os.FileMode
		wantErr  string
	}{
		{name: "no group leaves the socket for its owner only", wantMode: 0o600},
		{name: "a missing group fails closed to owner only", group: "no-such-group-uplinkd-test", wantMode: 0o600},
		{name: "an existing group may read", group: myGroup.Name, wantMode: 0o660},
		{name: "a stale socket is replaced", before: staleSocket, wantMode: 0o600},
		{name: "a live socket is not stolen", before: liveSocket, wantErr: "another uplinkd is answering on it"},
		{name: "a regular file is not removed", before: regularFile, wantErr: "exists and is not a socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(shortTempDir(t), "sub", "u.sock")
			if tt.before != nil {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				tt.before(t, path)
			}
			ln, err := Listen(path, tt.group, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != tt.wantMode {
				t.Errorf("socket mode %v, want socket %#o", fi.Mode(), tt.wantMode)
			}
			if tt.group != "" && tt.wantMode == 0o660 {
				if gid := fi.Sys().(*syscall.Stat_t).Gid; strconv.Itoa(int(gid)) != myGroup.Gid {
					t.Errorf("socket group %d, want %s", gid, myGroup.Gid)
				}
			}
			if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o755 {
				t.Errorf("socket directory mode %#o, want 0755", di.Mode().Perm())
			}
			if c, err := net.Dial("unix", path); err != nil {
				t.Errorf("dial the new socket: %v", err)
			} else {
				c.Close()
			}
			ents, _ := os.ReadDir(filepath.Dir(path))
			if len(ents) != 1 {
				t.Errorf("directory holds %d entries, want only the socket", len(ents))
			}
			ln.Close()
			if _, err := os.Lstat(path); !os.IsNotExist(err) {
				t.Errorf("socket still there after Close: %v", err)
			}
		})
	}
}

func TestListenRefusesATooLongPath(t *testing.T) {
	_, err := Listen("/tmp/"+strings.Repeat("x", 120)+"/u.sock", "", nil)
	if err == nil || !strings.Contains(err.Error(), "socket path too long") {
		t.Errorf("got %v", err)
	}
}

func staleSocket(t *testing.T, path string) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
}

func liveSocket(t *testing.T, path string) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
}

func regularFile(t *testing.T, path string) {
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, _ := os.ReadFile(path); string(b) != "keep me" {
			t.Error("Listen changed a file that was not a socket")
		}
	})
}

// A group that exists but that the daemon may not give (it is not in it, no CAP_CHOWN) never
// stops the daemon: the socket is root-only and the reason is told.
func TestListenFailsClosedWhenTheGroupCannotBeGiven(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("needs a process without CAP_CHOWN: runs as a normal user (systemd's check covers root in the unit)")
	}
	other, err := user.LookupGroupId("0") // root's group: a normal user is not in it
	if err != nil {
		t.Skipf("no group 0: %v", err)
	}
	if groups, _ := os.Getgroups(); slices.Contains(groups, 0) {
		t.Skip("this user is in group 0")
	}
	path := filepath.Join(shortTempDir(t), "u.sock")
	var warned error
	ln, err := Listen(path, other.Name, func(err error) { warned = err })
	if err != nil {
		t.Fatalf("Listen failed: %v; want a root-only socket", err)
	}
	defer ln.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %#o, want 0600", fi.Mode().Perm())
	}
	if warned == nil || !strings.Contains(warned.Error(), "root-only (0600)") {
		t.Errorf("warning %v, want one saying the socket is root-only", warned)
	}
}
