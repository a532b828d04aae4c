//go:build !linux

package frame

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"
)

// ErrNoNeighbour is returned by ResolveMAC when the kernel has no usable
// neighbour entry for the address once the timeout has passed.
var ErrNoNeighbour = errors.New("no neighbour entry")

// ResolveMAC returns an error: it reads the Linux neighbour table.
func ResolveMAC(ifindex int, dst netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	return nil, fmt.Errorf("resolve mac: not supported on %s/%s", runtime.GOOS, runtime.GOARCH)
}
