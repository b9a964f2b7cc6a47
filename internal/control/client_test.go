package control

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestClientSaysWhenTheDaemonIsNotRunning(t *testing.T) {
	dir := shortTempDir(t)
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody listens: like a crashed daemon

	tests := []struct {
		name, socket, want string
	}{
		{"a missing socket says where it looked", filepath.Join(dir, "missing.sock"), "uplinkd is not running (no socket at " + filepath.Join(dir, "missing.sock") + ")"},
		{"a stale socket says nobody answers", stale, "uplinkd is not running (nobody answers on " + stale + ")"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(tt.socket).Status(context.Background())
			if !errors.Is(err, ErrNotRunning) || err.Error() != tt.want {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestAPIErrorMatchesPermissionOnlyFor403(t *testing.T) {
	for code, want := range map[int]bool{403: true, 404: false, 422: false} {
		err := error(&APIError{StatusCode: code, Message: "x"})
		if errors.Is(err, ErrPermission) != want {
			t.Errorf("%d: errors.Is(ErrPermission) = %v, want %v", code, !want, want)
		}
	}
	if !strings.Contains(ErrNotRunning.Error(), "not running") {
		t.Error(ErrNotRunning)
	}
}
