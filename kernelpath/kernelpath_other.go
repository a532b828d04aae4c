//go:build !linux

package kernelpath

import (
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/internal/clock"
)

var _ bench.Conn = (*Conn)(nil)

func errUnsupported(op string) error {
	return fmt.Errorf("%s: the kernel path is not supported on %s/%s", op, runtime.GOOS, runtime.GOARCH)
}

// Conn is one probe channel over a kernel socket (Linux only).
type Conn struct{}

// Listener is the reflector side (Linux only).
type Listener struct{}

// Dial is not supported outside Linux.
func Dial(local netip.Addr, remote netip.AddrPort, o Options) (*Conn, error) {
	return nil, errUnsupported("dial")
}

// Listen is not supported outside Linux.
func Listen(local netip.AddrPort, o Options) (*Listener, error) {
	return nil, errUnsupported("listen")
}

func (l *Listener) Addr() netip.AddrPort                     { return netip.AddrPort{} }
func (l *Listener) Port() uint16                             { return 0 }
func (l *Listener) Accept(deadline time.Time) (*Conn, error) { return nil, errUnsupported("accept") }
func (l *Listener) Close() error                             { return nil }

func (c *Conn) LocalAddr() netip.AddrPort        { return netip.AddrPort{} }
func (c *Conn) RemoteAddr() netip.AddrPort       { return netip.AddrPort{} }
func (c *Conn) Stats() Stats                     { return Stats{} }
func (c *Conn) BusyPollActive() (bool, error)    { return false, errUnsupported("busy poll") }
func (c *Conn) Send(probe []byte) (int64, error) { return 0, errUnsupported("send") }
func (c *Conn) SendStamped(probe []byte, stamp bool) (int64, error) {
	return 0, errUnsupported("send")
}
func (c *Conn) Clock() clock.Wall { return clock.Wall{} }
func (c *Conn) ReplyStamped(probe []byte, stamp bool, userTx int64) error {
	return errUnsupported("send")
}
func (c *Conn) Recv(buf []byte, deadline time.Time) (int, bench.RxStamps, error) {
	return 0, bench.RxStamps{}, errUnsupported("receive")
}
func (c *Conn) TxStamps(report func(index uint64, kind bench.TxStampKind, ts int64)) error {
	return errUnsupported("tx stamps")
}
func (c *Conn) Close() error { return nil }

// EnableRxStamping is not supported outside Linux.
func EnableRxStamping() error { return errUnsupported("enable RX timestamping") }
