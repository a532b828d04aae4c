package kernelpath

import (
	"fmt"
	"time"

	"github.com/stackgap/stackgap/bench"
)

// Transport is the layer-4 protocol a Conn carries probes over.
type Transport string

const (
	// UDP carries one probe per datagram.
	UDP Transport = "udp"
	// TCP carries probes back to back on one connection, framed by their
	// header's length field.
	TCP Transport = "tcp"
)

// Default values of Options fields.
const (
	// DefaultConnectTimeout bounds a TCP connect when Options.ConnectTimeout is zero.
	DefaultConnectTimeout = 5 * time.Second
	// blockTick is the SO_RCVTIMEO a blocking receive sleeps at most before it
	// rechecks its deadline. Set once when the socket opens, so a deadline can
	// be overshot by up to one tick.
	blockTick = 10 * time.Millisecond
	// maxDeviceName is IFNAMSIZ minus the terminating NUL.
	maxDeviceName = 15
)

// Options configure a Conn or Listener. The zero value is not valid: Transport
// is required.
type Options struct {
	// Transport is UDP or TCP (required).
	Transport Transport
	// Wait is how Recv waits: bench.WaitBlock (default; blocking receive) or
	// bench.WaitSpin (non-blocking receive in a loop). The receive is recvmsg,
	// or recvfrom when Timestamping is off and no control data is wanted.
	Wait bench.WaitStrategy
	// BusyPoll, when > 0, sets SO_BUSY_POLL to this many whole microseconds and
	// SO_PREFER_BUSY_POLL (optional; both need CAP_NET_ADMIN). Zero leaves busy
	// polling to the system defaults.
	BusyPoll time.Duration
	// Timestamping turns on SO_TIMESTAMPING software stamps: RX_SOFTWARE on
	// every receive, TX_SCHED and TX_SOFTWARE for the sends that ask for
	// them (optional; default off).
	Timestamping bool
	// HardwareTimestamps also requests RX_HARDWARE, TX_HARDWARE and
	// RAW_HARDWARE (optional; needs Timestamping and a NIC with a PHC whose
	// hardware stamping is enabled).
	HardwareTimestamps bool
	// Device binds the socket to this interface with SO_BINDTODEVICE (optional).
	Device string
	// ConnectTimeout bounds a TCP connect (optional; default DefaultConnectTimeout).
	ConnectTimeout time.Duration
}

// validate checks o and returns a copy with defaults filled in.
func (o Options) validate() (Options, error) {
	switch o.Transport {
	case UDP, TCP:
	default:
		return o, fmt.Errorf("transport %q not supported (want %q or %q)", o.Transport, UDP, TCP)
	}
	switch o.Wait {
	case "":
		o.Wait = bench.WaitBlock
	case bench.WaitBlock, bench.WaitSpin:
	default:
		return o, fmt.Errorf("wait strategy %q not supported by the kernel path (want %q or %q)",
			o.Wait, bench.WaitBlock, bench.WaitSpin)
	}
	if o.BusyPoll < 0 || o.BusyPoll%time.Microsecond != 0 || o.BusyPoll/time.Microsecond > 1<<31-1 {
		return o, fmt.Errorf("busy-poll time %v invalid: want a whole number of microseconds, 0 to disable", o.BusyPoll)
	}
	if o.HardwareTimestamps && !o.Timestamping {
		return o, fmt.Errorf("hardware timestamps need Timestamping on")
	}
	if len(o.Device) > maxDeviceName {
		return o, fmt.Errorf("device name %q longer than %d bytes", o.Device, maxDeviceName)
	}
	switch {
	case o.ConnectTimeout < 0:
		return o, fmt.Errorf("connect timeout %v is negative", o.ConnectTimeout)
	case o.ConnectTimeout == 0:
		o.ConnectTimeout = DefaultConnectTimeout
	}
	return o, nil
}
