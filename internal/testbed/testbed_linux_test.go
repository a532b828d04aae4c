package testbed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stackgap/stackgap/internal/testutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as a helper process (see runHelper) instead of running
// tests.
const helperEnv = "STACKGAP_TESTBED_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(testutil.CheckNoLeaks(m, DefaultPrefix))
}

// runHelper creates a testbed, prints "ready <nsA> <nsB>" and waits to be killed (at most a
// minute). In mode "signal" it removes the testbed on SIGTERM via CloseOnSignal; in mode "child"
// it first starts `sleep 60` in B and prints "child <pid>".
func runHelper(mode string) int {
	tb, err := New(Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var extra string
	switch mode {
	case "signal":
		stop := tb.CloseOnSignal(context.Background())
		defer stop()
	case "hold":
	case "child":
		sleep := exec.Command("sleep", "60")
		if err := tb.Start(B, sleep); err != nil {
			fmt.Fprintln(os.Stderr, err)
			tb.Close()
			return 2
		}
		extra = fmt.Sprintf("child %d\n", sleep.Process.Pid)
	default:
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		tb.Close()
		return 2
	}
	fmt.Printf("ready %s %s\n%s", tb.NamespaceA, tb.NamespaceB, extra)
	time.Sleep(time.Minute)
	tb.Close()
	return 3
}

// startHelper runs the test binary as a helper process in mode and returns it with the names of
// its namespaces.
func startHelper(t *testing.T, mode string) (*exec.Cmd, []string) {
	t.Helper()
	cmd, _, names := startHelperReader(t, mode)
	return cmd, names
}

// startHelperReader is startHelper that also returns the rest of the helper's output.
func startHelperReader(t *testing.T, mode string) (*exec.Cmd, *bufio.Reader, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		Sweep(DefaultPrefix)
	})
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read helper's namespaces: %v", err)
	}
	fields := strings.Fields(line)
	if len(fields) != 3 || fields[0] != "ready" {
		t.Fatalf("unexpected helper output %q", line)
	}
	return cmd, r, fields[1:]
}

func newTestbed(t *testing.T, opts Options) *Testbed {
	t.Helper()
	testutil.RequireRoot(t)
	tb, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tb.Close(); err != nil {
			t.Error(err)
		}
	})
	return tb
}

// nsInode returns the inode of the network namespace file at path.
func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

func TestNew(t *testing.T) {
	tb := newTestbed(t, Options{MTU: 9000})

	if !tb.Exists() {
		t.Fatal("Exists() = false for a new testbed")
	}
	if tb.NamespaceA == tb.NamespaceB || tb.IfaceA == tb.IfaceB {
		t.Fatalf("sides share names: %s/%s, %s/%s", tb.NamespaceA, tb.NamespaceB, tb.IfaceA, tb.IfaceB)
	}
	wantAddrs := map[string]netip.Addr{
		"AddrA4": netip.MustParseAddr("198.18.0.1"), "AddrB4": netip.MustParseAddr("198.18.0.2"),
		"AddrA6": netip.MustParseAddr("2001:2::1"), "AddrB6": netip.MustParseAddr("2001:2::2"),
	}
	gotAddrs := map[string]netip.Addr{"AddrA4": tb.AddrA4, "AddrB4": tb.AddrB4, "AddrA6": tb.AddrA6, "AddrB6": tb.AddrB6}
	for k, want := range wantAddrs {
		if gotAddrs[k] != want {
			t.Errorf("%s = %v, want %v", k, gotAddrs[k], want)
		}
	}
	if bytes.Equal(tb.MACA, tb.MACB) || len(tb.MACA) != 6 || len(tb.MACB) != 6 {
		t.Errorf("MACs %v and %v: want two different Ethernet addresses", tb.MACA, tb.MACB)
	}

	// Each side sees exactly its own veth end, up, with its addresses, MTU and MAC, plus lo up.
	for _, side := range []Side{A, B} {
		err := tb.Do(side, func() error {
			links, err := netlink.LinkList()
			if err != nil {
				return err
			}
			var names []string
			for _, l := range links {
				names = append(names, l.Attrs().Name)
				if l.Attrs().Flags&net.FlagUp == 0 {
					return fmt.Errorf("%s is down", l.Attrs().Name)
				}
			}
			slices.Sort(names)
			if want := []string{"lo", tb.Iface(side)}; !slices.Equal(names, want) {
				return fmt.Errorf("links %v, want %v", names, want)
			}
			link, err := netlink.LinkByName(tb.Iface(side))
			if err != nil {
				return err
			}
			attrs := link.Attrs()
			if attrs.Index != tb.Ifindex(side) || attrs.MTU != 9000 || !bytes.Equal(attrs.HardwareAddr, tb.MAC(side)) {
				return fmt.Errorf("link %s: index %d, MTU %d, MAC %v; want %d, 9000, %v",
					attrs.Name, attrs.Index, attrs.MTU, attrs.HardwareAddr, tb.Ifindex(side), tb.MAC(side))
			}
			if attrs.OperState != netlink.OperUp {
				return fmt.Errorf("link %s: operational state %v", attrs.Name, attrs.OperState)
			}
			addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
			if err != nil {
				return err
			}
			var got []string
			for _, a := range addrs {
				if a.IP.IsLinkLocalUnicast() {
					continue
				}
				got = append(got, a.IPNet.String())
				if a.IP.To4() == nil && a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
					return fmt.Errorf("address %v is not usable yet: flags %#x", a.IPNet, a.Flags)
				}
			}
			slices.Sort(got)
			want := []string{netip.PrefixFrom(tb.Addr4(side), 24).String(), netip.PrefixFrom(tb.Addr6(side), 64).String()}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				return fmt.Errorf("addresses %v, want %v", got, want)
			}
			neighs, err := netlink.NeighList(link.Attrs().Index, netlink.FAMILY_ALL)
			if err != nil {
				return err
			}
			peer := 1 - side
			for _, addr := range []netip.Addr{tb.Addr4(peer), tb.Addr6(peer)} {
				i := slices.IndexFunc(neighs, func(n netlink.Neigh) bool { return n.IP.Equal(addr.AsSlice()) })
				if i < 0 {
					return fmt.Errorf("no neighbour entry for %v in %+v", addr, neighs)
				}
				if n := neighs[i]; n.State != netlink.NUD_PERMANENT || !bytes.Equal(n.HardwareAddr, tb.MAC(peer)) {
					return fmt.Errorf("neighbour %v: state %#x, MAC %v; want permanent, %v", addr, n.State, n.HardwareAddr, tb.MAC(peer))
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("side %v: %v", side, err)
		}
	}
}

// exchange sends ping-like UDP datagrams from A to B over the given network ("udp4", "udp6")
// and checks that each comes back, using sockets opened inside the namespaces.
func exchange(t *testing.T, tb *Testbed, network string) {
	t.Helper()
	addrA, addrB := tb.AddrA4, tb.AddrB4
	if network == "udp6" {
		addrA, addrB = tb.AddrA6, tb.AddrB6
	}
	var server, client *net.UDPConn
	err := tb.Do(B, func() error {
		var err error
		server, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrB, 0)))
		return err
	})
	if err != nil {
		t.Fatalf("listen in B: %v", err)
	}
	defer server.Close()
	err = tb.Do(A, func() error {
		var err error
		client, err = net.DialUDP(network, nil, server.LocalAddr().(*net.UDPAddr))
		return err
	})
	if err != nil {
		t.Fatalf("dial from A: %v", err)
	}
	defer client.Close()

	echoed := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := server.ReadFromUDPAddrPort(buf)
			if err != nil {
				echoed <- nil
				return
			}
			if from.Addr() != addrA {
				echoed <- fmt.Errorf("datagram from %v, want %v", from, addrA)
				return
			}
			if _, err := server.WriteToUDPAddrPort(buf[:n], from); err != nil {
				echoed <- err
				return
			}
		}
	}()
	buf := make([]byte, 64)
	for i := range 10 {
		msg := fmt.Sprintf("ping %d", i)
		if _, err := client.Write([]byte(msg)); err != nil {
			t.Fatalf("send %q: %v", msg, err)
		}
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := client.Read(buf)
		if err != nil {
			t.Fatalf("receive reply to %q: %v", msg, err)
		}
		if string(buf[:n]) != msg {
			t.Fatalf("reply %q, want %q", buf[:n], msg)
		}
	}
	server.Close()
	if err := <-echoed; err != nil {
		t.Fatal(err)
	}
}

func TestExchange(t *testing.T) {
	tb := newTestbed(t, Options{})
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) { exchange(t, tb, network) })
	}
}

func TestSocketsBelongToNamespace(t *testing.T) {
	tb := newTestbed(t, Options{})
	// B's address exists only in B: binding to it works there and nowhere else.
	addr := net.UDPAddrFromAddrPort(netip.AddrPortFrom(tb.AddrB4, 0))
	for side, wantOK := range map[Side]bool{A: false, B: true} {
		err := tb.Do(side, func() error {
			c, err := net.ListenUDP("udp4", addr)
			if err == nil {
				c.Close()
			}
			return err
		})
		if (err == nil) != wantOK {
			t.Errorf("bind %v in %v: got error %v, want success %v", addr, side, err, wantOK)
		}
	}
}

func TestParallelTestbeds(t *testing.T) {
	testutil.RequireRoot(t)
	const n = 4
	namesSeen := make(chan []string, n)
	t.Run("group", func(t *testing.T) {
		for i := range n {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				tb := newTestbed(t, Options{})
				namesSeen <- []string{tb.NamespaceA, tb.NamespaceB, tb.IfaceA, tb.IfaceB}
				exchange(t, tb, "udp4")
				exchange(t, tb, "udp6")
			})
		}
	})
	close(namesSeen)
	seen := map[string]bool{}
	for names := range namesSeen {
		for _, name := range names {
			if seen[name] {
				t.Errorf("name %s used by two testbeds", name)
			}
			seen[name] = true
		}
	}
	if len(seen) != 4*n {
		t.Errorf("saw %d names, want %d", len(seen), 4*n)
	}
}

// TestUsableAtOnce checks that the first datagram sent right after New arrives, over IPv4 and
// IPv6: device queues must be active and IPv6 local routes in place when New returns (the kernel
// does both asynchronously).
func TestUsableAtOnce(t *testing.T) {
	testutil.RequireRoot(t)
	for i := range 10 {
		tb, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		network, addr := "udp6", tb.AddrB6
		if i%2 == 1 {
			network, addr = "udp4", tb.AddrB4
		}
		err = firstDatagram(tb, network, addr)
		if cerr := tb.Close(); cerr != nil {
			t.Error(cerr)
		}
		if err != nil {
			t.Fatalf("testbed %d, %s: %v", i, network, err)
		}
	}
}

// firstDatagram sends one datagram from A to addr in B over network and waits for it.
func firstDatagram(tb *Testbed, network string, addr netip.Addr) error {
	var server, client *net.UDPConn
	err := tb.Do(B, func() error {
		var err error
		server, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	})
	if err != nil {
		return err
	}
	defer server.Close()
	err = tb.Do(A, func() error {
		var err error
		client, err = net.DialUDP(network, nil, server.LocalAddr().(*net.UDPAddr))
		return err
	})
	if err != nil {
		return err
	}
	defer client.Close()
	if _, err := client.Write([]byte("first")); err != nil {
		return err
	}
	server.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = server.Read(make([]byte, 16))
	return err
}

func TestCloseRemovesEverything(t *testing.T) {
	tb := newTestbed(t, Options{})
	var ifaceB netlink.Link
	// Hold a socket in B: the namespace outlives its mount, but the veth must still go.
	var held *net.UDPConn
	err := tb.Do(B, func() error {
		var err error
		if held, err = net.ListenUDP("udp4", &net.UDPAddr{IP: tb.AddrB4.AsSlice()}); err != nil {
			return err
		}
		ifaceB, err = netlink.LinkByName(tb.IfaceB)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	var nsB int
	nsB, err = openNamedNetns(tb.NamespaceB)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsB)

	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	if tb.Exists() {
		t.Error("Exists() = true after Close")
	}
	for _, name := range []string{tb.NamespaceA, tb.NamespaceB} {
		if _, err := os.Stat(filepath.Join("/run/netns", name)); !os.IsNotExist(err) {
			t.Errorf("namespace %s: stat after Close: %v, want not exist", name, err)
		}
	}
	err = runInNetns(setnsTo(nsB), func() error {
		_, err := netlink.LinkByIndex(ifaceB.Attrs().Index)
		if !errors.As(err, new(netlink.LinkNotFoundError)) {
			return fmt.Errorf("find %s after Close: %v, want not found", tb.IfaceB, err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if err := tb.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := tb.Do(A, func() error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v, want ErrClosed", err)
	}
	if err := tb.Start(A, exec.Command("true")); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestNewFailsMidwayLeavesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	const prefix = "sgfail"
	before := ownNamespaces(t, prefix)
	tb, err := New(Options{Prefix: prefix, MTU: 100000})
	if err == nil {
		tb.Close()
		t.Fatal("New with MTU 100000 succeeded, want an error from the kernel")
	}
	if !strings.Contains(err.Error(), "add veth pair") {
		t.Errorf("error %q does not say that creating the veth pair failed", err)
	}
	if after := ownNamespaces(t, prefix); len(after) != len(before) {
		t.Errorf("namespaces left after a failed New: %v (before: %v)", after, before)
	}
}

func TestNewInvalidOptions(t *testing.T) {
	for _, opts := range []Options{{MTU: -5}, {Prefix: "bad/prefix"}} {
		if tb, err := New(opts); err == nil {
			tb.Close()
			t.Errorf("New(%+v) succeeded, want an error", opts)
		}
	}
}

func ownNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	names, err := List(prefix)
	if err != nil {
		t.Fatal(err)
	}
	var own []string
	for _, name := range names {
		if pid, _, _ := parseName(prefix, name); pid == os.Getpid() {
			own = append(own, name)
		}
	}
	return own
}

func TestDo(t *testing.T) {
	tb := newTestbed(t, Options{})
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	callerBefore := nsInode(t, threadNetns)

	for _, side := range []Side{A, B} {
		want := nsInode(t, filepath.Join("/run/netns", tb.Namespace(side)))
		var got uint64
		err := tb.Do(side, func() error {
			var st unix.Stat_t
			if err := unix.Stat(threadNetns, &st); err != nil {
				return err
			}
			got = st.Ino
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Do(%v) ran in namespace inode %d, want %d", side, got, want)
		}
	}
	if after := nsInode(t, threadNetns); after != callerBefore {
		t.Errorf("caller's namespace changed from %d to %d", callerBefore, after)
	}

	wantErr := errors.New("from fn")
	if err := tb.Do(A, func() error { return wantErr }); err != wantErr {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if err := tb.Do(Side(2), func() error { return nil }); err == nil {
		t.Error("Do with an invalid side succeeded")
	}
	if err := tb.Do(A, func() error { runtime.Goexit(); return nil }); !errors.Is(err, errGoexit) {
		t.Errorf("Do with fn calling Goexit: %v, want errGoexit", err)
	}
	func() {
		defer func() {
			p, ok := recover().(*panicError)
			if !ok || p.value != "boom" || !strings.Contains(p.Error(), "testbed.TestDo") {
				t.Errorf("recovered %v, want the panic from fn with its stack", p)
			}
		}()
		tb.Do(B, func() error { panic("boom") })
	}()
}

func TestStart(t *testing.T) {
	tb := newTestbed(t, Options{})
	for _, side := range []Side{A, B} {
		other := tb.Iface(1 - side)
		var out bytes.Buffer
		cmd := exec.Command("cat", "/proc/self/net/dev")
		cmd.Stdout = &out
		if err := tb.Start(side, cmd); err != nil {
			t.Fatal(err)
		}
		if cmd.SysProcAttr.Pdeathsig != syscall.SIGKILL {
			t.Errorf("Pdeathsig = %v, want SIGKILL", cmd.SysProcAttr.Pdeathsig)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), tb.Iface(side)+":") || strings.Contains(out.String(), other+":") {
			t.Errorf("side %v: /proc/self/net/dev of the child:\n%s\nwant %s and not %s", side, &out, tb.Iface(side), other)
		}
	}
}

func TestOutput(t *testing.T) {
	tb := newTestbed(t, Options{})
	testutil.RequireTool(t, "ip")
	out, err := tb.Output(B, "ip", "-o", "addr", "show", "dev", tb.IfaceB)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "198.18.0.2/24") || !strings.Contains(string(out), "2001:2::2/64") {
		t.Errorf("ip addr in B:\n%s\nwant 198.18.0.2/24 and 2001:2::2/64", out)
	}
	_, err = tb.Output(A, "ip", "link", "show", "dev", tb.IfaceB)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("ip link show of B's interface in A: %v, want an error with ip's message", err)
	}
}

func TestIPNetnsExec(t *testing.T) {
	tb := newTestbed(t, Options{})
	testutil.RequireTool(t, "ip")
	out, err := exec.Command("ip", "netns", "exec", tb.NamespaceA, "ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec: %v: %s", err, out)
	}
	if !strings.Contains(string(out), tb.IfaceA+"@") {
		t.Errorf("ip netns exec %s ip link:\n%s\nwant %s", tb.NamespaceA, out, tb.IfaceA)
	}
	out, err = exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), tb.NamespaceB) {
		t.Errorf("ip netns list: %v\n%s\nwant %s", err, out, tb.NamespaceB)
	}
}

func TestListAndSweep(t *testing.T) {
	live := newTestbed(t, Options{})
	helper, orphans := startHelper(t, "hold")

	names, err := List(DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range append([]string{live.NamespaceA, live.NamespaceB}, orphans...) {
		if !slices.Contains(names, want) {
			t.Errorf("List(%q) = %v, want it to include %s", DefaultPrefix, names, want)
		}
	}

	// While the helper lives, Sweep leaves its namespaces alone.
	removed, err := Sweep(DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range removed {
		if slices.Contains(orphans, name) {
			t.Fatalf("Sweep removed %s of a live process", name)
		}
	}

	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	for _, name := range orphans {
		if _, err := os.Stat(filepath.Join("/run/netns", name)); err != nil {
			t.Fatalf("the killed helper's namespace %s is gone before Sweep: %v", name, err)
		}
	}
	removed, err = Sweep(DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range orphans {
		if !slices.Contains(removed, name) {
			t.Errorf("Sweep removed %v, want it to include %s", removed, name)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", name)); !os.IsNotExist(err) {
			t.Errorf("namespace %s after Sweep: %v, want not exist", name, err)
		}
	}
	if !live.Exists() {
		t.Error("Sweep removed a live testbed of this process")
	}
	if _, err := Sweep("bad/prefix"); err == nil {
		t.Error("Sweep with an invalid prefix succeeded")
	}
}

func TestCloseOnSignal(t *testing.T) {
	testutil.RequireRoot(t)
	helper, names := startHelper(t, "signal")
	if err := helper.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := helper.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("helper ended with %v, want death by SIGTERM", err)
	}
	if ws := exitErr.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("helper ended with %v, want death by SIGTERM", ws)
	}
	for _, name := range names {
		if _, err := os.Stat(filepath.Join("/run/netns", name)); !os.IsNotExist(err) {
			t.Errorf("namespace %s after SIGTERM: %v, want not exist", name, err)
		}
	}
}

func TestCloseOnSignalStop(t *testing.T) {
	tb := newTestbed(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	stopByCtx := tb.CloseOnSignal(ctx)
	cancel()
	stopByCtx()
	stop := tb.CloseOnSignal(context.Background())
	stop()
	stop() // idempotent
	if !tb.Exists() {
		t.Error("testbed closed without a signal")
	}
}

func TestStartedProcessDiesWithParent(t *testing.T) {
	testutil.RequireRoot(t)
	helper, out, _ := startHelperReader(t, "child")
	var pid int
	if _, err := fmt.Fscanf(out, "child %d\n", &pid); err != nil {
		t.Fatalf("read the pid of the helper's child: %v", err)
	}
	if !processAlive(pid) {
		t.Fatalf("the helper's child %d is not running", pid)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	for deadline := time.Now().Add(5 * time.Second); processAlive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("process %d started with Start still runs after its parent died", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProcessAlive(t *testing.T) {
	if !processAlive(os.Getpid()) {
		t.Error("this process is not alive")
	}
	// A child that has exited but is not reaped is a zombie: dead for Sweep.
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	pid := zombie.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); processAlive(pid); {
		if time.Now().After(deadline) {
			t.Fatalf("exited child %d still counts as alive", pid)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Errorf("child %d was reaped before Wait: %v", pid, err)
	}
	zombie.Wait()
	if processAlive(pid) {
		t.Errorf("reaped child %d counts as alive", pid)
	}
}
