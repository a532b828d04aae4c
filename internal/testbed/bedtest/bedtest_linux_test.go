package bedtest

import (
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testutil"
)

const testPrefix = "sgbedtest"

func TestMain(m *testing.M) { os.Exit(testutil.CheckNoLeaks(m, testPrefix)) }

// threadNetns returns the inode of the calling thread's network namespace.
func threadNetns(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatalf("stat the thread's network namespace: %v", err)
	}
	return st.Ino
}

// hasLink reports whether the calling thread's namespace has an interface name.
func hasLink(t *testing.T, name string) bool {
	t.Helper()
	_, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return false
	}
	if err != nil {
		t.Fatalf("look up %s: %v", name, err)
	}
	return true
}

// TestEnterAndIn moves a test goroutine into side A for the rest of a subtest, into B for one
// function (which ends the goroutine with runtime.Goexit, as t.FailNow does, in a second case),
// and checks where the thread is after each step and after the subtest's cleanup.
func TestEnterAndIn(t *testing.T) {
	runtime.LockOSThread()
	home := threadNetns(t)
	runtime.UnlockOSThread()

	var tb *testbed.Testbed
	t.Run("enter", func(t *testing.T) {
		tb = New(t, testbed.Options{Prefix: testPrefix})
		// Registered before Enter, so it runs after Enter's cleanup.
		t.Cleanup(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if got := threadNetns(t); got != home {
				t.Errorf("after cleanup the thread is in namespace %d, want %d (where it started)", got, home)
			}
		})
		Enter(t, tb, testbed.A)
		inA := threadNetns(t)
		if inA == home || !hasLink(t, tb.IfaceA) || hasLink(t, tb.IfaceB) {
			t.Fatalf("after Enter(A) the thread is in namespace %d (home %d), which does not hold %s alone", inA, home, tb.IfaceA)
		}
		var inB uint64
		In(t, tb, testbed.B, func() {
			inB = threadNetns(t)
			if !hasLink(t, tb.IfaceB) || hasLink(t, tb.IfaceA) {
				t.Errorf("In(B) runs in a namespace without %s, or with %s", tb.IfaceB, tb.IfaceA)
			}
		})
		if inB == inA || inB == home {
			t.Errorf("In(B) ran in namespace %d; A is %d, home %d", inB, inA, home)
		}
		if got := threadNetns(t); got != inA {
			t.Errorf("after In(B) the thread is in namespace %d, want A's %d", got, inA)
		}
		// A function that ends the goroutine (t.FailNow does so) still leaves B.
		done := make(chan uint64)
		go func() {
			runtime.LockOSThread()
			defer func() {
				done <- threadNetns(t)
				runtime.UnlockOSThread()
			}()
			In(t, tb, testbed.B, runtime.Goexit)
		}()
		if got := <-done; got != home {
			t.Errorf("after In(B) ended its goroutine, its thread is in namespace %d, want %d", got, home)
		}
	})
	if tb.Exists() {
		t.Errorf("testbed %s still exists after the subtest's cleanup", tb.NamespaceA)
	}
}

func TestTCPCounters(t *testing.T) {
	tb := New(t, testbed.Options{Prefix: testPrefix})
	before := TCPCounters(t, tb, testbed.B)
	for _, name := range []string{"ActiveOpens", "PassiveOpens", "RetransSegs", "OutRsts", "InErrs"} {
		if _, ok := before[name]; !ok {
			t.Errorf("no counter %s in %v", name, before)
		}
	}
	// One connection from A to B: B counts one passive open, A (a different namespace) one active.
	var ln int
	In(t, tb, testbed.B, func() {
		var err error
		if ln, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: tb.AddrB4.As4(), Port: 7}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(ln, 1); err != nil {
			t.Fatal(err)
		}
	})
	defer unix.Close(ln)
	beforeA := TCPCounters(t, tb, testbed.A)
	In(t, tb, testbed.A, func() {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(c)
		if err := unix.Connect(c, &unix.SockaddrInet4{Addr: tb.AddrB4.As4(), Port: 7}); err != nil {
			t.Fatal(err)
		}
	})
	// B has counted the connection once it can be accepted.
	conn, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	unix.Close(conn)
	if d := TCPCounters(t, tb, testbed.B)["PassiveOpens"] - before["PassiveOpens"]; d != 1 {
		t.Errorf("B's PassiveOpens went up by %d, want 1", d)
	}
	if d := TCPCounters(t, tb, testbed.A)["ActiveOpens"] - beforeA["ActiveOpens"]; d != 1 {
		t.Errorf("A's ActiveOpens went up by %d, want 1", d)
	}
}
