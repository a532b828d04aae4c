package bedtest

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testutil"
)

// New creates a testbed for the test and closes it at cleanup. Without root it skips the test, or
// fails it when CI=true (testutil.RequireRoot).
func New(t testing.TB, opts testbed.Options) *testbed.Testbed {
	t.Helper()
	testutil.RequireRoot(t)
	tb, err := testbed.New(opts)
	if err != nil {
		t.Fatalf("create testbed: %v", err)
	}
	t.Cleanup(func() {
		if err := tb.Close(); err != nil {
			t.Errorf("close testbed: %v", err)
		}
	})
	return tb
}

// Enter locks the test's goroutine to its OS thread and moves the thread into side's namespace
// for the rest of the test: sockets, netlink requests and child processes started from the test
// goroutine belong to that namespace. At cleanup (registered now, so it runs after the cleanups the
// test registers later and before tb's own) the thread moves back and is unlocked; if it cannot
// move back it stays locked, so the runtime ends it with the goroutine instead of reusing it.
// Subtests run on goroutines of their own and are not moved.
func Enter(t testing.TB, tb *testbed.Testbed, side testbed.Side) {
	t.Helper()
	leave := lockInto(t, tb, side)
	t.Cleanup(func() {
		if err := leaveAndUnlock(leave, side); err != nil {
			t.Error(err)
		}
	})
}

// In runs fn on the calling goroutine with its OS thread moved into side's namespace, then moves
// the thread back to the namespace it was in. Unlike tb.Do, fn may call t.Fatal: the thread moves
// back all the same. If it cannot move back, the thread stays locked, so the runtime ends it with
// the goroutine instead of reusing it, and the test fails.
func In(t testing.TB, tb *testbed.Testbed, side testbed.Side, fn func()) {
	t.Helper()
	leave := lockInto(t, tb, side)
	returned := false
	defer func() {
		if err := leaveAndUnlock(leave, side); err != nil {
			if returned {
				t.Fatal(err)
			}
			t.Error(err) // fn is already ending the goroutine
		}
	}()
	fn()
	returned = true
}

// lockInto locks the calling goroutine to its OS thread and moves the thread into side's
// namespace; leave moves it back.
func lockInto(t testing.TB, tb *testbed.Testbed, side testbed.Side) (leave func() error) {
	t.Helper()
	runtime.LockOSThread()
	leave, err := switchThread(tb, side)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	return leave
}

// leaveAndUnlock moves the thread back with leave and unlocks it; if the thread cannot move back,
// it stays locked, so the runtime ends it with its goroutine.
func leaveAndUnlock(leave func() error, side testbed.Side) error {
	if err := leave(); err != nil {
		return fmt.Errorf("leave the namespace of side %v: %w (the thread stays locked and ends with its goroutine)", side, err)
	}
	runtime.UnlockOSThread()
	return nil
}

// switchThread moves the calling thread, which the caller has locked, into side's namespace and
// returns the function that moves it back to the namespace it was in.
func switchThread(tb *testbed.Testbed, side testbed.Side) (leave func() error, err error) {
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("open the thread's network namespace: %w", err)
	}
	// Named namespaces are bind-mounted under /run/netns, where netns.GetFromName looks.
	target, err := netns.GetFromName(tb.Namespace(side))
	if err != nil {
		orig.Close()
		return nil, fmt.Errorf("open network namespace %s: %w", tb.Namespace(side), err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		orig.Close()
		return nil, fmt.Errorf("enter network namespace %s: %w", tb.Namespace(side), err)
	}
	return func() error {
		defer orig.Close()
		if err := netns.Set(orig); err != nil {
			return fmt.Errorf("restore network namespace: %w", err)
		}
		return nil
	}, nil
}

// TCPCounters returns the Tcp counters of /proc/net/snmp in side's namespace, by name
// ("ActiveOpens", "RetransSegs", …).
func TCPCounters(t testing.TB, tb *testbed.Testbed, side testbed.Side) map[string]int64 {
	t.Helper()
	var data []byte
	if err := tb.Do(side, func() (err error) {
		data, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	}); err != nil {
		t.Fatalf("read TCP counters of side %v: %v", side, err)
	}
	var names, values []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "Tcp:" {
			if names == nil {
				names = f[1:]
			} else {
				values = f[1:]
			}
		}
	}
	counters := map[string]int64{}
	for i := range min(len(names), len(values)) {
		counters[names[i]], _ = strconv.ParseInt(values[i], 10, 64)
	}
	return counters
}
