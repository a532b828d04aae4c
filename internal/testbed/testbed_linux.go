package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkUpTimeout bounds the wait for both veth ends to report carrier after they are set up.
const linkUpTimeout = 5 * time.Second

// New creates a testbed: two named network namespaces, a veth pair between them, loopback and
// veth up, addresses assigned (IPv6 without duplicate address detection), and permanent
// neighbour entries for the peer's IPv4 and IPv6 address, so the link is usable at once and
// carries no ARP or neighbour discovery traffic. IPv6 router solicitations, router
// advertisements and DAD are switched off in both namespaces to keep the link quiet.
// When New fails, everything it created is removed.
func New(opts Options) (*Testbed, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("create testbed: %w", err)
	}
	token, err := randomToken()
	if err != nil {
		return nil, fmt.Errorf("create testbed: %w", err)
	}
	n := makeNames(opts.Prefix, os.Getpid(), token)
	tb := &Testbed{
		NamespaceA: n.nsA, NamespaceB: n.nsB,
		IfaceA: n.ifaceA, IfaceB: n.ifaceB,
		AddrA4: addrA4.Addr(), AddrB4: addrB4.Addr(),
		AddrA6: addrA6.Addr(), AddrB6: addrB6.Addr(),
		MTU:  opts.MTU,
		nsFD: [2]int{-1, -1},
	}
	if err := tb.setUp(); err != nil {
		return nil, errors.Join(fmt.Errorf("create testbed: %w", err), tb.Close())
	}
	return tb, nil
}

// setUp builds what New promises; on error tb.Close removes whatever exists.
func (tb *Testbed) setUp() error {
	for _, side := range []Side{A, B} {
		name := tb.Namespace(side)
		if err := createNamedNetns(name); err != nil {
			return err
		}
		tb.created[side] = true
		fd, err := openNamedNetns(name)
		if err != nil {
			return err
		}
		tb.nsFD[side] = fd
		if err := tb.Do(side, quietIPv6); err != nil {
			return fmt.Errorf("configure namespace %s: %w", name, err)
		}
	}
	handleA, err := tb.netlinkHandle(A)
	if err != nil {
		return err
	}
	defer handleA.Close()
	handleB, err := tb.netlinkHandle(B)
	if err != nil {
		return err
	}
	defer handleB.Close()

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: tb.IfaceA, MTU: tb.MTU, TxQLen: -1},
		PeerName:      tb.IfaceB,
		PeerTxQLen:    -1,
		PeerNamespace: netlink.NsFd(tb.nsFD[B]),
	}
	if err := handleA.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth pair %s/%s with MTU %d: %w", tb.IfaceA, tb.IfaceB, tb.MTU, err)
	}
	ends := []struct {
		handle  *netlink.Handle
		side    Side
		prefix4 netip.Prefix
		prefix6 netip.Prefix
	}{
		{handleA, A, addrA4, addrA6},
		{handleB, B, addrB4, addrB6},
	}
	links := make([]netlink.Link, len(ends))
	for i, end := range ends {
		lo, err := end.handle.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find loopback in %s: %w", tb.Namespace(end.side), err)
		}
		if err := end.handle.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set loopback up in %s: %w", tb.Namespace(end.side), err)
		}
		link, err := end.handle.LinkByName(tb.Iface(end.side))
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", tb.Iface(end.side), tb.Namespace(end.side), err)
		}
		if err := end.handle.LinkSetUp(link); err != nil {
			return fmt.Errorf("set %s up: %w", tb.Iface(end.side), err)
		}
		links[i] = link
	}
	// Wait until the kernel's link watcher has seen carrier on both ends: the end that came up
	// first gets its transmit queue activated only then, and until then drops what it is given.
	for i, end := range ends {
		link, err := waitOperUp(end.handle, links[i].Attrs().Index, linkUpTimeout)
		if err != nil {
			return fmt.Errorf("wait for %s to come up: %w", tb.Iface(end.side), err)
		}
		links[i] = link
	}
	// Adding addresses takes the RTNL lock, which the link watcher holds while it activates the
	// device queue, so after this the link is fully usable.
	for i, end := range ends {
		for _, prefix := range []netip.Prefix{end.prefix4, end.prefix6} {
			addr := &netlink.Addr{IPNet: prefixToIPNet(prefix)}
			if prefix.Addr().Is6() {
				addr.Flags = unix.IFA_F_NODAD
			}
			if err := end.handle.AddrAdd(links[i], addr); err != nil {
				return fmt.Errorf("add address %s to %s: %w", prefix, tb.Iface(end.side), err)
			}
		}
	}
	// The kernel inserts an IPv6 address's local route from a work queue, even without DAD;
	// until then packets to the address are dropped.
	for _, end := range ends {
		if err := waitLocalRoute(end.handle, end.prefix6.Addr(), linkUpTimeout); err != nil {
			return fmt.Errorf("wait for %s in %s: %w", end.prefix6.Addr(), tb.Namespace(end.side), err)
		}
	}
	tb.IfindexA, tb.MACA = links[0].Attrs().Index, links[0].Attrs().HardwareAddr
	tb.IfindexB, tb.MACB = links[1].Attrs().Index, links[1].Attrs().HardwareAddr
	// Permanent neighbour entries: no ARP or neighbour discovery traffic during measurements,
	// and no resolution delay for the first packet.
	for i, end := range ends {
		peer := 1 - end.side
		for _, addr := range []netip.Addr{tb.Addr4(peer), tb.Addr6(peer)} {
			neigh := &netlink.Neigh{
				LinkIndex:    links[i].Attrs().Index,
				Family:       netlink.FAMILY_V4,
				State:        netlink.NUD_PERMANENT,
				IP:           addr.AsSlice(),
				HardwareAddr: tb.MAC(peer),
			}
			if addr.Is6() {
				neigh.Family = netlink.FAMILY_V6
			}
			if err := end.handle.NeighAdd(neigh); err != nil {
				return fmt.Errorf("add neighbour %s on %s: %w", addr, tb.Iface(end.side), err)
			}
		}
	}
	return nil
}

// quietIPv6 switches off IPv6 router solicitations, router advertisements and DAD for the
// interfaces created afterwards in the current namespace.
func quietIPv6() error {
	settings := []struct{ key, value string }{
		{"net/ipv6/conf/default/router_solicitations", "0"},
		{"net/ipv6/conf/default/accept_ra", "0"},
		{"net/ipv6/conf/default/accept_dad", "0"},
		{"net/ipv6/conf/all/accept_dad", "0"},
	}
	for _, s := range settings {
		path := filepath.Join("/proc/sys", s.key)
		if err := os.WriteFile(path, []byte(s.value), 0); err != nil {
			return fmt.Errorf("set sysctl %s: %w", strings.ReplaceAll(s.key, "/", "."), err)
		}
	}
	return nil
}

// waitOperUp polls until the link reports operational state up and returns its attributes then.
func waitOperUp(h *netlink.Handle, index int, timeout time.Duration) (netlink.Link, error) {
	deadline := time.Now().Add(timeout)
	for {
		link, err := h.LinkByIndex(index)
		if err != nil {
			return nil, err
		}
		if link.Attrs().OperState == netlink.OperUp {
			return link, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("operational state is %s after %v", link.Attrs().OperState, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitLocalRoute polls until the kernel routes addr locally.
func waitLocalRoute(h *netlink.Handle, addr netip.Addr, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		routes, err := h.RouteGet(addr.AsSlice())
		if err != nil {
			return fmt.Errorf("get route: %w", err)
		}
		if len(routes) > 0 && routes[0].Type == unix.RTN_LOCAL {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no local route after %v", timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// netlinkHandle opens a route netlink socket inside side's namespace.
func (tb *Testbed) netlinkHandle(side Side) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := tb.Do(side, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open netlink in %s: %w", tb.Namespace(side), err)
	}
	return h, nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Close deletes the veth pair and both namespaces. It is idempotent; after it, every other
// method returns ErrClosed. Sockets opened in the namespaces keep working as unconnected
// leftovers until closed, but the veth pair is gone.
func (tb *Testbed) Close() error {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if tb.closed {
		return nil
	}
	tb.closed = true
	var errs []error
	// Delete the veth explicitly: a namespace lives on while a socket or process holds it, and
	// the pair should disappear with the testbed regardless.
	if tb.nsFD[A] >= 0 {
		errs = append(errs, deleteLink(tb.nsFD[A], tb.IfaceA))
	}
	for _, side := range []Side{A, B} {
		if tb.nsFD[side] >= 0 {
			unix.Close(tb.nsFD[side])
			tb.nsFD[side] = -1
		}
		if tb.created[side] {
			errs = append(errs, deleteNamedNetns(tb.Namespace(side)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close testbed: %w", err)
	}
	return nil
}

// deleteLink deletes the interface name in the namespace open at nsFD, if it exists.
func deleteLink(nsFD int, name string) error {
	return runInNetns(setnsTo(nsFD), func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return fmt.Errorf("open netlink: %w", err)
		}
		defer h.Close()
		link, err := h.LinkByName(name)
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find %s: %w", name, err)
		}
		if err := h.LinkDel(link); err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
		return nil
	})
}

// Exists reports whether both namespaces of the testbed are present under /run/netns.
func (tb *Testbed) Exists() bool {
	for _, name := range []string{tb.NamespaceA, tb.NamespaceB} {
		if _, err := os.Stat(filepath.Join(netnsDir, name)); err != nil {
			return false
		}
	}
	return true
}

// Do runs fn on a goroutine locked to an OS thread that is switched into side's namespace, and
// waits for it. Sockets fn opens belong to that namespace for their whole life and can be used
// from any goroutine afterwards. The thread is switched back afterwards; if that fails, the thread
// is terminated rather than reused. The caller's goroutine is never switched.
//
// Because fn runs on another goroutine, it must report failure by returning an error, not with
// t.Fatal; a panic in fn is re-raised in the caller.
func (tb *Testbed) Do(side Side, fn func() error) error {
	if err := checkSide(side); err != nil {
		return err
	}
	return runInNetns(tb.enter(side), fn)
}

// enter returns an enter function for runInNetns that joins side's namespace, or fails with
// ErrClosed.
func (tb *Testbed) enter(side Side) func() error {
	return func() error {
		tb.mu.RLock()
		defer tb.mu.RUnlock()
		if tb.closed {
			return ErrClosed
		}
		return setnsTo(tb.nsFD[side])()
	}
}

// Start starts cmd inside side's namespace (it inherits the namespace of the thread that forks
// it; no `ip netns exec`). It sets cmd.SysProcAttr.Pdeathsig to SIGKILL, keeping the other
// SysProcAttr fields, so the child dies with this process. Note that /sys in the child still
// shows the host's interfaces; /proc/self/net and netlink show the namespace's.
func (tb *Testbed) Start(side Side, cmd *exec.Cmd) error {
	if err := checkSide(side); err != nil {
		return err
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := runInNetns(tb.enter(side), cmd.Start); err != nil {
		return fmt.Errorf("start %s in %s: %w", cmd.Path, tb.Namespace(side), err)
	}
	return nil
}

// Run starts cmd inside side's namespace, like Start, and waits for it.
func (tb *Testbed) Run(side Side, cmd *exec.Cmd) error {
	if err := tb.Start(side, cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// Output runs the program name with args inside side's namespace and returns its standard
// output. When the program fails, the error includes its standard error.
func (tb *Testbed) Output(side Side, name string, args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := tb.Run(side, cmd); err != nil {
		return stdout.Bytes(), fmt.Errorf("run %s in %s: %w: %s", cmd, tb.Namespace(side), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// CloseOnSignal closes tb when the process receives SIGINT, SIGTERM or SIGHUP, then sends the
// signal to the process again without this handler, so the process ends as it would have without
// it; a program that handles the signal itself keeps running and sees tb closed. It stops
// watching when ctx is done or when the returned stop function is called; stop waits for a
// cleanup in progress. An error from Close is written to standard error, as there is no caller
// left to return it to.
//
// The only shared state is the signal package's handler registration.
func (tb *Testbed) CloseOnSignal(ctx context.Context) (stop func()) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case sig := <-signals:
			if err := tb.Close(); err != nil {
				fmt.Fprintf(os.Stderr, "testbed: cleanup after %v: %v\n", sig, err)
			}
			signal.Stop(signals)
			if s, ok := sig.(syscall.Signal); ok {
				syscall.Kill(os.Getpid(), s)
			}
		case <-ctx.Done():
			signal.Stop(signals)
		case <-quit:
			signal.Stop(signals)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// List returns the names of the testbed namespaces under /run/netns made with prefix, by any
// process, sorted.
func List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	var found []string
	for _, e := range entries {
		if _, _, ok := parseName(prefix, e.Name()); ok {
			found = append(found, e.Name())
		}
	}
	return found, nil
}

// Sweep removes the testbed namespaces made with prefix by processes that are gone (or zombies),
// such as those left by a run killed with SIGKILL, and returns their names. Namespaces of live
// processes are left alone, including those whose pid a new process has reused.
func Sweep(prefix string) (removed []string, err error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, fmt.Errorf("sweep testbeds: %w", err)
	}
	found, err := List(prefix)
	if err != nil {
		return nil, fmt.Errorf("sweep testbeds: %w", err)
	}
	var errs []error
	for _, name := range found {
		pid, _, _ := parseName(prefix, name)
		if processAlive(pid) {
			continue
		}
		if err := deleteNamedNetns(name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("sweep testbeds: %w", err)
	}
	return removed, nil
}

// processAlive reports whether a process with this pid exists and is not a zombie (it may belong
// to someone else).
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err) // when in doubt, keep the namespaces
	}
	// The state follows the command name, which is in parentheses and may contain anything.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return true
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}
