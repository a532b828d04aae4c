package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/stackgap/stackgap/results"
)

// Client is the sender's end of a control connection to a reflector.
type Client struct {
	nc net.Conn
	c  *control
}

// ClientOptions configures Dial. Zero values take the defaults.
type ClientOptions struct {
	// Local is the source address (optional).
	Local netip.Addr
	// Secret is the shared secret, when the reflector requires one (optional).
	Secret []byte
	// Timeout bounds connecting and the handshake (optional, default 5 s).
	Timeout time.Duration
	// Build names the software build in the hello message (optional).
	Build string
}

// Dial connects to a reflector's control port and runs the handshake.
func Dial(ctx context.Context, peer netip.AddrPort, o ClientOptions) (*Client, error) {
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	d := net.Dialer{Timeout: o.Timeout}
	if o.Local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: o.Local.AsSlice()}
	}
	nc, err := d.DialContext(ctx, "tcp", peer.String())
	if err != nil {
		return nil, fmt.Errorf("connect to reflector %v: %w (%s)", peer, unwrapOpError(err), dialHint(err))
	}
	cl := &Client{nc: nc, c: newControl(nc)}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	defer stop()
	nc.SetDeadline(time.Now().Add(o.Timeout))
	if err := clientHandshake(cl.c, o.Secret, o.Build); err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("reflector %v did not answer the handshake within %v", peer, o.Timeout)
		}
		return nil, err
	}
	nc.SetDeadline(time.Time{})
	return cl, nil
}

// dialHint says what to check when the control connection cannot be made.
func dialHint(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "is stackgap-reflect running there, on that port?"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "is the address right, and is there a route to it from here?"
	case errors.As(err, &ne) && ne.Timeout():
		return "no answer: is the host up, and does a firewall let the control port through?"
	}
	return "is stackgap-reflect running there?"
}

// LocalAddr is the sender's address on the control connection.
func (cl *Client) LocalAddr() netip.Addr { return addrPortOf(cl.nc.LocalAddr()).Addr() }

// Open asks for a session and returns the reflector's probe port and its
// description of its host.
func (cl *Client) Open(p SessionParams) (port uint16, env *results.Environment, err error) {
	cl.nc.SetDeadline(time.Now().Add(controlTimeout))
	if err := cl.c.send(&message{Type: msgOpen, Session: &p}); err != nil {
		return 0, nil, err
	}
	m, err := cl.c.expect(msgOpened)
	if err != nil {
		return 0, nil, fmt.Errorf("open session: %w", err)
	}
	return m.Port, m.Environment, nil
}

// CloseSession ends the open session and returns the reflector's report.
func (cl *Client) CloseSession() (*ReflectorReport, error) {
	cl.nc.SetDeadline(time.Now().Add(controlTimeout))
	if err := cl.c.send(&message{Type: msgClose}); err != nil {
		return nil, err
	}
	m, err := cl.c.expect(msgClosed)
	if err != nil {
		return nil, fmt.Errorf("close session: %w", err)
	}
	if m.Report == nil {
		return nil, errors.New("close session: reflector sent no report")
	}
	return m.Report, nil
}

// Close closes the control connection; the reflector ends any open session.
func (cl *Client) Close() error { return cl.nc.Close() }

// watch watches the control connection while a phase runs, when the
// reflector has nothing to say: if it closes the connection (it died) or
// speaks unasked (it ended the session with an error), onEnd is called so the
// phase stops at once instead of probing a dead peer. The returned function
// stops watching; it returns an error when the connection is gone, and nil
// when it is usable (an unasked message is then read by CloseSession).
func (cl *Client) watch(onEnd func()) (stop func() error) {
	cl.nc.SetReadDeadline(time.Time{})
	result := make(chan error, 1)
	go func() {
		_, err := cl.c.r.Peek(1)
		if !isTimeout(err) {
			onEnd()
		}
		result <- err
	}()
	return func() error {
		cl.nc.SetReadDeadline(time.Now()) // unblocks Peek
		err := <-result
		cl.nc.SetReadDeadline(time.Time{})
		if err == nil || isTimeout(err) {
			return nil
		}
		return fmt.Errorf("reflector closed the control connection during the phase: %w", unwrapOpError(err))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sessionControl opens and closes the sessions of a run: over the control
// channel of a stackgap reflector, or trivially for an echo peer.
type sessionControl interface {
	Open(p SessionParams) (port uint16, env *results.Environment, err error)
	CloseSession() (*ReflectorReport, error)
	watch(onEnd func()) (stop func() error)
}

var (
	_ sessionControl = (*Client)(nil)
	_ sessionControl = (*echoControl)(nil)
)

// echoControl is the sessionControl of an echo peer: every session goes to
// the peer's one port and ends with an empty report.
type echoControl struct {
	port  uint16
	local netip.Addr
}

func newEchoControl(o RunOptions) (*echoControl, error) {
	local := o.Local
	if !local.IsValid() {
		// The kernel's choice of source address for the peer.
		c, err := net.Dial("udp", o.Peer.String())
		if err != nil {
			return nil, fmt.Errorf("route to echo peer %v: %w", o.Peer, unwrapOpError(err))
		}
		local = addrPortOfUDP(c.LocalAddr()).Addr()
		c.Close()
	}
	return &echoControl{port: o.Peer.Port(), local: local}, nil
}

func addrPortOfUDP(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

func (e *echoControl) Open(SessionParams) (uint16, *results.Environment, error) {
	return e.port, nil, nil
}

func (e *echoControl) CloseSession() (*ReflectorReport, error) {
	return &ReflectorReport{Counters: map[string]uint64{}, CPU: -1,
		Notes: []string{"echo peer: no reflector stamps, residence or counters"}}, nil
}

func (e *echoControl) watch(func()) func() error { return func() error { return nil } }
