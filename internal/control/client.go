package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/uplinkd/uplinkd/internal/api"
	"github.com/uplinkd/uplinkd/uplink"
)

// DefaultSocket is where the packaged daemon listens.
const DefaultSocket = uplink.DefaultSocket

var (
	// ErrNotRunning means nobody listens on the socket: it is missing or refuses connections.
	ErrNotRunning = errors.New("uplinkd is not running")
	// ErrPermission means the socket could not be opened, or the daemon refused a change (403).
	ErrPermission = errors.New("permission denied")
)

// APIError is an error answer from the daemon: the HTTP status and the daemon's message.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string { return e.Message }

// Is makes a 403 match ErrPermission.
func (e *APIError) Is(target error) bool {
	return target == ErrPermission && e.StatusCode == http.StatusForbidden
}

// Client talks to uplinkd over its control socket.
type Client struct {
	socket string
	http   *http.Client
	// Timeout bounds each request except the event stream when ctx has no deadline.
	Timeout time.Duration
}

// NewClient returns a client for the daemon listening on socketPath.
func NewClient(socketPath string) *Client {
	var d net.Dialer
	return NewClientDial(socketPath, func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, "unix", socketPath)
	})
}

// NewClientDial returns a client that opens its connections to the daemon at socketPath with
// dial: for a test or benchmark that connects as another user (the daemon tells readers from
// root by the peer's credentials).
func NewClientDial(socketPath string, dial func(ctx context.Context) (net.Conn, error)) *Client {
	c := &Client{socket: socketPath, Timeout: 30 * time.Second}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx)
		},
		DisableCompression: true,
		MaxIdleConns:       1,
		IdleConnTimeout:    10 * time.Second,
	}}
	return c
}

// Status fetches the daemon's whole state.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var st api.Status
	err := c.do(ctx, http.MethodGet, "/v1/status", &st)
	return st, err
}

// Drain takes an uplink out of service; now also moves its existing connections at once.
func (c *Client) Drain(ctx context.Context, name string, now bool) error {
	p := "/v1/uplinks/" + url.PathEscape(name) + "/drain"
	if now {
		p += "?now=1"
	}
	return c.do(ctx, http.MethodPost, p, nil)
}

// Undrain returns a drained uplink to service.
func (c *Client) Undrain(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/v1/uplinks/"+url.PathEscape(name)+"/undrain", nil)
}

// Reload asks the daemon to read its config file again. A refused config comes back as an
// *APIError carrying the daemon's explanation.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/reload", nil)
}

// Standby puts the box in standby in its gateway pair (on), or makes it active again.
func (c *Client) Standby(ctx context.Context, on bool) error {
	if on {
		return c.do(ctx, http.MethodPost, "/v1/ha/standby", nil)
	}
	return c.do(ctx, http.MethodPost, "/v1/ha/active", nil)
}

// Events calls fn for every event until ctx ends (it then returns ctx.Err()) or the daemon
// closes the stream (an error saying so).
func (c *Client) Events(ctx context.Context, fn func(api.Event)) error {
	resp, err := c.send(ctx, http.MethodGet, "/v1/events")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return err
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var ev api.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("uplinkd sent an unreadable event: %w", err)
		}
		fn(ev)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("event stream from %s broke: %w", c.socket, err)
	}
	return fmt.Errorf("uplinkd closed the event stream (stopping or restarting?)")
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	if _, ok := ctx.Deadline(); !ok && c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	resp, err := c.send(ctx, method, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkStatus(resp); err != nil {
		return err
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("read answer to %s %s from uplinkd: %w", method, path, err)
	}
	return nil
}

func (c *Client) send(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://uplinkd"+path, nil)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.dialError(err)
	}
	return resp, nil
}

// dialError turns socket errors into the messages an operator needs.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w (no socket at %s)", ErrNotRunning, c.socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (nobody answers on %s)", ErrNotRunning, c.socket)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w on %s: run as root or join the socket's group", ErrPermission, c.socket)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("uplinkd did not answer on %s in time", c.socket)
	}
	return fmt.Errorf("talk to uplinkd on %s: %w", c.socket, err)
}

func checkStatus(resp *http.Response) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil || eb.Error == "" {
		eb.Error = fmt.Sprintf("uplinkd answered %s", resp.Status)
	}
	return &APIError{StatusCode: resp.StatusCode, Message: eb.Error}
}
