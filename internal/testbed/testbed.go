// Package testbed builds "two hosts on one machine" for tests, benchmarks and `stackgap demo`:
// two named network namespaces, A and B, joined by a veth pair and addressed from the
// benchmarking ranges (198.18.0.0/24 and 2001:2::/64).
//
// The namespaces are bind-mounted under /run/netns like `ip netns add` does, so `ip netns exec`,
// `tcpdump` and `nft` can inspect a live testbed. Their names are "<prefix>-<pid>-<random>-a" and
// "…-b", so parallel testbeds never collide and Sweep can remove what a killed process left.
//
// Code runs inside a namespace through Do (a function on a locked OS thread) or Start/Run/Output
// (a child process); neither changes the namespace of the calling goroutine.
package testbed

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// Defaults for Options.
const (
	DefaultPrefix = "sg"
	DefaultMTU    = 1500
)

// Addresses of the two sides.
var (
	addrA4 = netip.MustParsePrefix("198.18.0.1/24")
	addrB4 = netip.MustParsePrefix("198.18.0.2/24")
	addrA6 = netip.MustParsePrefix("2001:2::1/64")
	addrB6 = netip.MustParsePrefix("2001:2::2/64")
)

// ErrClosed is returned by operations on a testbed after Close.
var ErrClosed = errors.New("testbed is closed")

// Options configures New.
type Options struct {
	// Prefix starts every namespace name (optional, default "sg"). Letters, digits, '_' and '.'
	// only, at most 32 characters; Sweep and List take the same prefix.
	Prefix string
	// MTU of both veth ends (optional, default 1500). The kernel checks the upper bound.
	MTU int
}

// Side names one of the two hosts.
type Side int

// The two hosts: A is the sender side, B the reflector side by convention.
const (
	A Side = iota
	B
)

func (s Side) String() string {
	switch s {
	case A:
		return "A"
	case B:
		return "B"
	}
	return "Side(" + strconv.Itoa(int(s)) + ")"
}

// Testbed is a pair of network namespaces joined by a veth pair. Its exported fields are
// read-only. It is safe for concurrent use.
type Testbed struct {
	NamespaceA, NamespaceB string           // names under /run/netns
	IfaceA, IfaceB         string           // veth ends, IfaceA in A and IfaceB in B
	IfindexA, IfindexB     int              // interface indexes, each in its own namespace
	AddrA4, AddrB4         netip.Addr       // 198.18.0.1 and 198.18.0.2 (/24)
	AddrA6, AddrB6         netip.Addr       // 2001:2::1 and 2001:2::2 (/64), no DAD
	MACA, MACB             net.HardwareAddr // MAC addresses of IfaceA and IfaceB
	MTU                    int              // MTU of both veth ends

	mu      sync.RWMutex
	closed  bool
	nsFD    [2]int  // open namespace file descriptors, indexed by Side
	created [2]bool // whether New created the namespace, indexed by Side
}

// Namespace returns the namespace name of side.
func (tb *Testbed) Namespace(side Side) string {
	if side == B {
		return tb.NamespaceB
	}
	return tb.NamespaceA
}

// Iface returns the veth end that lives in side.
func (tb *Testbed) Iface(side Side) string {
	if side == B {
		return tb.IfaceB
	}
	return tb.IfaceA
}

// Ifindex returns the interface index of the veth end in side.
func (tb *Testbed) Ifindex(side Side) int {
	if side == B {
		return tb.IfindexB
	}
	return tb.IfindexA
}

// Addr4 returns the IPv4 address of side.
func (tb *Testbed) Addr4(side Side) netip.Addr {
	if side == B {
		return tb.AddrB4
	}
	return tb.AddrA4
}

// Addr6 returns the IPv6 address of side.
func (tb *Testbed) Addr6(side Side) netip.Addr {
	if side == B {
		return tb.AddrB6
	}
	return tb.AddrA6
}

// MAC returns the MAC address of the veth end in side.
func (tb *Testbed) MAC(side Side) net.HardwareAddr {
	if side == B {
		return tb.MACB
	}
	return tb.MACA
}

func checkSide(side Side) error {
	if side != A && side != B {
		return fmt.Errorf("invalid side: %d", int(side))
	}
	return nil
}

// withDefaults validates opts and fills in the defaults.
func (opts Options) withDefaults() (Options, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if err := checkPrefix(opts.Prefix); err != nil {
		return opts, err
	}
	if opts.MTU == 0 {
		opts.MTU = DefaultMTU
	}
	if opts.MTU < 0 {
		return opts, fmt.Errorf("invalid MTU: %d", opts.MTU)
	}
	return opts, nil
}

const maxPrefixLen = 32

func checkPrefix(prefix string) error {
	if prefix == "" || len(prefix) > maxPrefixLen {
		return fmt.Errorf("invalid prefix %q: want 1 to %d characters", prefix, maxPrefixLen)
	}
	for _, c := range prefix {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return fmt.Errorf("invalid prefix %q: only letters, digits, '_' and '.' are allowed", prefix)
		}
	}
	return nil
}

// names holds the names of one testbed's namespaces and interfaces.
type names struct {
	nsA, nsB       string
	ifaceA, ifaceB string
}

// maxIfaceLen is the longest interface name Linux accepts (IFNAMSIZ - 1).
const maxIfaceLen = 15

// makeNames derives the names for a testbed of process pid from a random token (8 hex digits).
// Namespaces are "<prefix>-<pid>-<token>-a|b"; interfaces are "<prefix, cut to 4>-<token>-a|b",
// at most 15 characters.
func makeNames(prefix string, pid int, token string) names {
	ns := prefix + "-" + strconv.Itoa(pid) + "-" + token
	short := prefix[:min(len(prefix), maxIfaceLen-len(token)-3)]
	iface := short + "-" + token
	return names{nsA: ns + "-a", nsB: ns + "-b", ifaceA: iface + "-a", ifaceB: iface + "-b"}
}

// parseName splits a namespace name made by makeNames with prefix into its pid and side.
func parseName(prefix, name string) (pid int, side Side, ok bool) {
	rest, found := strings.CutPrefix(name, prefix+"-")
	if !found {
		return 0, 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 || !isHex(parts[1]) {
		return 0, 0, false
	}
	pid, err := strconv.Atoi(parts[0])
	if err != nil || pid <= 0 || strconv.Itoa(pid) != parts[0] {
		return 0, 0, false
	}
	switch parts[2] {
	case "a":
		return pid, A, true
	case "b":
		return pid, B, true
	}
	return 0, 0, false
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// randomToken returns 8 random hex digits.
func randomToken() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
