package kernelpath

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// requireRoot skips a privileged test outside CI and fails it in CI.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("needs root, and CI=true forbids skipping")
	}
	tb.Skip("needs root")
}

// inFreshNetns runs setup on a locked OS thread inside a new, anonymous network
// namespace whose loopback is up. Sockets that setup creates stay in that
// namespace whichever thread uses them later; the namespace disappears when
// the last of them is closed.
func inFreshNetns(tb testing.TB, setup func() error) {
	tb.Helper()
	requireRoot(tb)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		ns, err := netns.New() // creates the namespace and moves this thread into it
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("new netns: %w", err)
			return
		}
		err = func() error {
			defer ns.Close()
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return fmt.Errorf("find lo: %w", err)
			}
			if err := netlink.LinkSetUp(lo); err != nil {
				return fmt.Errorf("bring lo up: %w", err)
			}
			return setup()
		}()
		if rerr := netns.Set(orig); rerr != nil {
			// Leave the thread locked: the runtime ends it with this goroutine.
			errc <- errors.Join(err, fmt.Errorf("restore netns: %w", rerr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		tb.Fatal(err)
	}
}
