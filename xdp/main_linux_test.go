package xdp

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/stackgap/stackgap/kernelpath"
)

// TestMain fails the run when the tests leak file descriptors (sockets,
// maps, programs, links, namespace handles).
func TestMain(m *testing.M) {
	// Start the runtime's network poller first: its descriptors live on.
	if c, err := net.ListenPacket("udp4", "127.0.0.1:0"); err == nil {
		c.Close()
	}
	// The kernel path's baseline conns take stamps, and the process then
	// holds one RX stamping socket for good.
	if err := kernelpath.EnableRxStamping(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	before, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	after, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if code == 0 && len(after) != len(before) {
		fmt.Fprintf(os.Stderr, "file descriptors leaked: %d open before the tests, %d after\n", len(before), len(after))
		for _, e := range after {
			if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
				fmt.Fprintf(os.Stderr, "  fd %s -> %s\n", e.Name(), target)
			}
		}
		code = 1
	}
	os.Exit(code)
}
