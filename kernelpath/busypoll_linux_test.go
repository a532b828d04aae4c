package kernelpath

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestBusyPollInertOnLoopback(t *testing.T) {
	o := Options{Transport: UDP, BusyPoll: 50 * time.Microsecond, Timestamping: true}
	l, sender, _ := openPair(t, o, loopback4)
	busy, err := unix.GetsockoptInt(sender.fd, unix.SOL_SOCKET, unix.SO_BUSY_POLL)
	if err != nil || busy != 50 {
		t.Fatalf("SO_BUSY_POLL = %d (%v), want 50", busy, err)
	}
	prefer, err := unix.GetsockoptInt(sender.fd, unix.SOL_SOCKET, unix.SO_PREFER_BUSY_POLL)
	if err != nil || prefer != 1 {
		t.Fatalf("SO_PREFER_BUSY_POLL = %d (%v), want 1", prefer, err)
	}
	p := make([]byte, 64)
	bench.MarshalProbe(p, 1, 0)
	if _, err := sender.Send(p); err != nil {
		t.Fatal(err)
	}
	reflector, err := l.Accept(time.Now().Add(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer reflector.Close()
	if _, _, err := reflector.Recv(p, time.Now().Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	active, err := reflector.BusyPollActive()
	if err != nil {
		t.Fatal(err)
	}
	if active {
		t.Error("BusyPollActive on loopback, which has no NAPI id: want false (inert)")
	}
}

// TestBusyPollNeedsNetAdmin drops CAP_NET_ADMIN on one thread (capabilities are
// per thread) and checks that the error names it. The thread is never unlocked,
// so it ends with its goroutine instead of going back to the pool without the
// capability.
func TestBusyPollNeedsNetAdmin(t *testing.T) {
	requireRoot(t)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := netns.New() // no traffic leaves this thread's namespace
		if err != nil {
			errc <- err
			return
		}
		ns.Close()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[unix.CAP_NET_ADMIN/32].Effective &^= 1 << (unix.CAP_NET_ADMIN % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		c, err := Dial(netip.Addr{}, netip.AddrPortFrom(loopback4, 9), Options{Transport: UDP, BusyPoll: 50 * time.Microsecond})
		if err == nil {
			c.Close()
			err = errors.New("Dial with busy polling succeeded without CAP_NET_ADMIN")
		} else if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "needs CAP_NET_ADMIN") {
			err = fmt.Errorf("got %v, want EPERM naming CAP_NET_ADMIN", err)
		} else {
			t.Logf("without CAP_NET_ADMIN: %v", err)
			err = nil
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestBindToDevice(t *testing.T) {
	var errMissing error
	var c *Conn
	inFreshNetns(t, func() error {
		var err error
		if c, err = Dial(netip.Addr{}, netip.AddrPortFrom(loopback4, 9), Options{Transport: UDP, Device: "lo"}); err != nil {
			return err
		}
		c2, err := Dial(netip.Addr{}, netip.AddrPortFrom(loopback4, 9), Options{Transport: UDP, Device: "nosuchdev0"})
		if err == nil {
			c2.Close()
		}
		errMissing = err
		return nil
	})
	defer c.Close()
	if dev, err := unix.GetsockoptString(c.fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE); err != nil || dev != "lo" {
		t.Errorf("SO_BINDTODEVICE = %q (%v), want lo", dev, err)
	}
	if !errors.Is(errMissing, unix.ENODEV) || !strings.Contains(errMissing.Error(), `bind to device "nosuchdev0"`) {
		t.Errorf("Dial bound to a missing device: got %v, want ENODEV naming the device", errMissing)
	}
}
