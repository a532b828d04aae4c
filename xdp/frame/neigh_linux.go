package frame

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoNeighbour is returned by ResolveMAC when the kernel has no usable
// neighbour entry for the address once the timeout has passed.
var ErrNoNeighbour = errors.New("no neighbour entry")

// usableNeighbour are the neighbour states whose link-layer address the
// kernel itself would send to.
const usableNeighbour = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// resolveTriggerPort is the discard port (RFC 863): the datagram that makes
// the kernel resolve the address goes there.
const resolveTriggerPort = 9

// ResolveMAC returns the link-layer address of dst, an on-link neighbour
// reached through interface ifindex (for a destination behind a gateway,
// resolve the gateway: ResolveMAC refuses it), as the kernel's neighbour table (ARP, NDP) of the calling
// thread's network namespace has it. Without an entry it makes the kernel
// resolve it by sending an empty UDP datagram to dst's discard port from an
// ordinary socket bound to the interface, again every 250 ms, and polls the
// table until an entry is reachable, stale, delayed or probed, or timeout
// passes.
func ResolveMAC(ifindex int, dst netip.Addr, timeout time.Duration) (net.HardwareAddr, error) {
	if ifindex <= 0 {
		return nil, fmt.Errorf("resolve mac: invalid interface index: %d", ifindex)
	}
	if !dst.IsValid() || dst.IsUnspecified() || dst.IsMulticast() {
		return nil, fmt.Errorf("resolve mac: invalid neighbour address %v", dst)
	}
	dst = dst.Unmap()
	link, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("resolve mac: unknown interface index %d", ifindex)
		}
		return nil, fmt.Errorf("resolve mac: look up interface index %d: %w", ifindex, err)
	}
	ifname := link.Attrs().Name
	if mac, err := lookupNeighbour(ifindex, dst); mac != nil || err != nil {
		return mac, err
	}
	// The trigger below leaves ifindex, where the kernel resolves the next
	// hop: refuse a destination it would reach through a gateway.
	routes, err := netlink.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{OifIndex: ifindex})
	if err != nil {
		return nil, fmt.Errorf("resolve mac: no route to %v on %s: %w", dst, ifname, err)
	}
	for _, r := range routes {
		if r.Gw != nil {
			return nil, fmt.Errorf("resolve mac: %v is not on-link on %s but routed via %v: resolve the gateway instead", dst, ifname, r.Gw)
		}
	}

	domain, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: resolveTriggerPort, Addr: dst.As16(), ZoneId: uint32(ifindex)})
	if dst.Is4() {
		domain, sa = unix.AF_INET, &unix.SockaddrInet4{Port: resolveTriggerPort, Addr: dst.As4()}
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("resolve mac: %w", os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX, ifindex); err != nil {
		return nil, fmt.Errorf("resolve mac: bind to %s (needs CAP_NET_RAW): %w", ifname, os.NewSyscallError("setsockopt(SO_BINDTOIFINDEX)", err))
	}

	start := time.Now()
	deadline := start.Add(timeout)
	var nextTrigger time.Time
	poll := time.Millisecond
	for {
		now := time.Now()
		if !now.Before(nextTrigger) {
			err := unix.Sendto(fd, nil, 0, sa)
			switch {
			case errors.Is(err, unix.ENETUNREACH):
				return nil, fmt.Errorf("resolve mac: no route to %v on %s: %w", dst, ifname, os.NewSyscallError("sendto", err))
			case err != nil && !errors.Is(err, unix.EHOSTUNREACH) && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.ECONNREFUSED):
				// EHOSTUNREACH: an earlier resolution failed; ECONNREFUSED: an ICMP
				// error for the previous datagram. Both just mean "try again".
				return nil, fmt.Errorf("resolve mac: trigger resolution of %v on %s: %w", dst, ifname, os.NewSyscallError("sendto", err))
			}
			nextTrigger = now.Add(250 * time.Millisecond)
		}
		if mac, err := lookupNeighbour(ifindex, dst); mac != nil || err != nil {
			return mac, err
		}
		if !now.Before(deadline) {
			return nil, fmt.Errorf("%w for %v on %s after %v", ErrNoNeighbour, dst, ifname, timeout)
		}
		time.Sleep(min(poll, time.Until(deadline)+time.Millisecond))
		poll = min(2*poll, 20*time.Millisecond)
	}
}

// lookupNeighbour returns dst's address from a usable neighbour entry, or nil.
func lookupNeighbour(ifindex int, dst netip.Addr) (net.HardwareAddr, error) {
	family := netlink.FAMILY_V4
	if dst.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := netlink.NeighList(ifindex, family)
	if err != nil {
		return nil, fmt.Errorf("resolve mac: list neighbours: %w", err)
	}
	for _, n := range neighs {
		addr, ok := netip.AddrFromSlice(n.IP)
		if !ok || addr.Unmap() != dst || n.State&usableNeighbour == 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		return append(net.HardwareAddr(nil), n.HardwareAddr...), nil
	}
	return nil, nil
}
