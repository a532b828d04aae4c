package paths

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/xdp"
)

// withXDPPass wraps a path that does not use XDP: when a session asks for
// XDPPass (--kernel-with-xdp-pass), the interface that holds the local
// address gets the steering program with no probe flow, which passes every
// packet, for as long as the session lasts. The kernel path is then measured
// behind an XDP program, to see what XDP alone costs it.
type withXDPPass struct{ bench.Path }

// Dial attaches the program (when asked) before dialling.
func (p withXDPPass) Dial(spec bench.DialSpec) (bench.Conn, error) {
	pass, err := attachXDPPass(spec.ConnSpec, spec.Local)
	if err != nil || pass == nil {
		if err != nil {
			return nil, err
		}
		return p.Path.Dial(spec)
	}
	c, err := p.Path.Dial(spec)
	if err != nil {
		return nil, errors.Join(err, pass.Close())
	}
	return &xdpPassConn{Conn: c, pass: pass, mode: pass.Mode()}, nil
}

// Listen attaches the program (when asked) for the listener's lifetime.
func (p withXDPPass) Listen(spec bench.ListenSpec) (bench.Listener, error) {
	pass, err := attachXDPPass(spec.ConnSpec, spec.Local.Addr())
	if err != nil || pass == nil {
		if err != nil {
			return nil, err
		}
		return p.Path.Listen(spec)
	}
	l, err := p.Path.Listen(spec)
	if err != nil {
		return nil, errors.Join(err, pass.Close())
	}
	return &xdpPassListener{Listener: l, pass: pass}, nil
}

func attachXDPPass(spec bench.ConnSpec, local netip.Addr) (*xdp.Steering, error) {
	if !spec.XDPPass {
		return nil, nil
	}
	ifname := InterfaceOf(local)
	if ifname == "" {
		return nil, fmt.Errorf("attach XDP_PASS program: no interface has address %v", local)
	}
	ifindex, err := interfaceIndex(ifname)
	if err != nil {
		return nil, fmt.Errorf("attach XDP_PASS program: %w", err)
	}
	s, err := xdp.AttachSteering(xdp.SteerOptions{Ifindex: ifindex, Mode: xdp.SteerModeAuto})
	if err != nil {
		return nil, fmt.Errorf("attach XDP_PASS program: %w", err)
	}
	return s, nil
}

// xdpPassListener detaches the program when the listener closes, which the
// engine does after the session's Conn.
type xdpPassListener struct {
	bench.Listener
	pass *xdp.Steering
}

func (l *xdpPassListener) Accept(deadline time.Time) (bench.Conn, error) {
	c, err := l.Listener.Accept(deadline)
	if err != nil {
		return nil, err
	}
	return &xdpPassConn{Conn: c, mode: l.pass.Mode()}, nil
}

func (l *xdpPassListener) Close() error { return errors.Join(l.Listener.Close(), l.pass.Close()) }

// xdpPassConn is a Conn measured behind an XDP_PASS program. It forwards the
// optional interfaces of the Conn it wraps.
type xdpPassConn struct {
	bench.Conn
	pass *xdp.Steering // owned (sender side): detached on Close
	mode string
}

var (
	_ bench.Reporter      = (*xdpPassConn)(nil)
	_ bench.StampDeclarer = (*xdpPassConn)(nil)
)

func (c *xdpPassConn) Close() error {
	err := c.Conn.Close()
	if c.pass != nil {
		err = errors.Join(err, c.pass.Close())
	}
	return err
}

func (c *xdpPassConn) Counters() map[string]uint64 {
	if r, ok := c.Conn.(bench.Reporter); ok {
		return r.Counters()
	}
	return nil
}

func (c *xdpPassConn) Notes() []string {
	var notes []string
	if r, ok := c.Conn.(bench.Reporter); ok {
		notes = r.Notes()
	}
	return append(notes, "kernel path measured behind an XDP program that passes every packet (stackgap steer, "+c.mode+" mode)")
}

func (c *xdpPassConn) Stamps() bench.StampSet {
	if d, ok := c.Conn.(bench.StampDeclarer); ok {
		return d.Stamps()
	}
	return bench.StampSet{Tx: []bench.TxStampKind{bench.TxSched, bench.TxSoftware}, Rx: []bench.RxStampKind{bench.RxSoftware}}
}
