package phc

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stackgap/stackgap/internal/testbed"
	"github.com/stackgap/stackgap/internal/testbed/bedtest"
	"github.com/stackgap/stackgap/internal/testutil"
)

// testPrefix names this package's test namespaces.
const testPrefix = "sgphc"

func TestMain(m *testing.M) { os.Exit(testutil.CheckNoLeaks(m, testPrefix)) }

func ptpTime(ns int64) unix.PtpClockTime {
	return unix.PtpClockTime{Sec: ns / 1e9, Nsec: uint32(ns % 1e9)}
}

func TestExtendedReadings(t *testing.T) {
	v := unix.PtpSysOffsetExtended{Samples: 2}
	v.Ts[0] = [3]unix.PtpClockTime{ptpTime(1_000_000_000_999_999_990), ptpTime(1_000_000_037_000_000_005), ptpTime(1_000_000_001_000_000_020)}
	v.Ts[1] = [3]unix.PtpClockTime{ptpTime(5), ptpTime(6), ptpTime(7)}
	v.Ts[2] = [3]unix.PtpClockTime{ptpTime(99), ptpTime(99), ptpTime(99)} // beyond Samples
	got, err := extendedReadings(&v)
	if err != nil {
		t.Fatalf("extendedReadings: %v", err)
	}
	want := []reading{
		{before: 1_000_000_000_999_999_990, phc: 1_000_000_037_000_000_005, after: 1_000_000_001_000_000_020},
		{before: 5, phc: 6, after: 7},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("extendedReadings() = %+v, want %+v", got, want)
	}
	for _, n := range []uint32{0, 26} {
		if _, err := extendedReadings(&unix.PtpSysOffsetExtended{Samples: n}); err == nil {
			t.Errorf("extendedReadings with %d samples succeeded", n)
		}
	}
}

func TestBasicReadings(t *testing.T) {
	v := unix.PtpSysOffset{Samples: 2}
	for i, ns := range []int64{100, 5000, 140, 5045, 175} { // realtime, PHC, realtime, PHC, realtime
		v.Ts[i] = ptpTime(ns)
	}
	got, err := basicReadings(&v)
	if err != nil {
		t.Fatalf("basicReadings: %v", err)
	}
	want := []reading{{before: 100, phc: 5000, after: 140}, {before: 140, phc: 5045, after: 175}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("basicReadings() = %+v, want %+v", got, want)
	}
	for _, n := range []uint32{0, 26} {
		if _, err := basicReadings(&unix.PtpSysOffset{Samples: n}); err == nil {
			t.Errorf("basicReadings with %d samples succeeded", n)
		}
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		errno       syscall.Errno
		unsupported bool
	}{
		{unix.EOPNOTSUPP, true},
		{unix.ENOTTY, true},
		{unix.EIO, false},
		{unix.EBUSY, false},
	}
	for _, tt := range tests {
		err := unsupported("ioctl X", tt.errno)
		if got := errors.Is(err, errors.ErrUnsupported); got != tt.unsupported {
			t.Errorf("unsupported(%v) matches ErrUnsupported: %v, want %v", tt.errno, got, tt.unsupported)
		}
		if !errors.Is(err, tt.errno) || !strings.Contains(err.Error(), "ioctl X") {
			t.Errorf("unsupported(%v) = %v: lost the errno or the operation", tt.errno, err)
		}
	}
}

func TestDescribeTimestamping(t *testing.T) {
	tests := []struct {
		caps uint32
		want string
	}{
		{unix.SOF_TIMESTAMPING_RX_SOFTWARE | unix.SOF_TIMESTAMPING_SOFTWARE | unix.SOF_TIMESTAMPING_TX_SOFTWARE, "software timestamping only"},
		{unix.SOF_TIMESTAMPING_RAW_HARDWARE | unix.SOF_TIMESTAMPING_SOFTWARE, "hardware timestamping without a clock"},
		{0, "no timestamping"},
	}
	for _, tt := range tests {
		if got := describeTimestamping(tt.caps); got != tt.want {
			t.Errorf("describeTimestamping(%#x) = %q, want %q", tt.caps, got, tt.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(-1); err == nil || !strings.Contains(err.Error(), "invalid PTP clock index: -1") {
		t.Errorf("Open(-1) error = %v, want invalid PTP clock index", err)
	}

	missing := 0
	for ; missing < 1<<16; missing++ {
		if _, err := os.Stat("/dev/ptp" + strconv.Itoa(missing)); errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	c, err := Open(missing)
	if err == nil {
		c.Close()
		t.Fatalf("Open(%d) of a missing /dev/ptp%d succeeded", missing, missing)
	}
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no such clock") ||
		!strings.Contains(err.Error(), "/dev/ptp"+strconv.Itoa(missing)) {
		t.Errorf("Open(%d) error = %q, want one that says there is no such clock and names the device", missing, err)
	}
	t.Logf("Open(%d): %v", missing, err)

	c, err = openPath("/dev/null", 0)
	if err == nil {
		c.Close()
		t.Fatal("opening /dev/null as a PTP clock succeeded")
	}
	if !errors.Is(err, unix.ENOTTY) || !strings.Contains(err.Error(), "/dev/null is not a PTP clock") {
		t.Errorf("opening /dev/null as a PTP clock: error %q, want one that says it is not a PTP clock", err)
	}
}

// Every /dev/ptpN on this host: measure it for real and convert its current time.
func TestRealClocks(t *testing.T) {
	devices, err := filepath.Glob("/dev/ptp[0-9]*")
	if err != nil {
		t.Fatal(err)
	}
	testutil.RequireRoot(t)
	if len(devices) == 0 {
		// Hardware this host lacks (veth has no PHC): the fake-clock tests cover the
		// conversion; here the first clock a NIC would have must fail to open cleanly.
		t.Log("no PTP hardware clock (/dev/ptp*) on this host: checking that opening one fails cleanly")
		if c, err := Open(0); err == nil {
			c.Close()
			t.Fatal("Open(0) succeeded without /dev/ptp0")
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open(0) without /dev/ptp0: %v, want an error wrapping fs.ErrNotExist", err)
		}
		return
	}
	for _, dev := range devices {
		index, err := strconv.Atoi(strings.TrimPrefix(dev, "/dev/ptp"))
		if err != nil {
			t.Fatalf("device name %s: %v", dev, err)
		}
		t.Run(dev, func(t *testing.T) { testRealClock(t, index) })
	}
}

func testRealClock(t *testing.T, index int) {
	c, err := Open(index)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	for range 5 {
		s, err := c.Measure(MaxSamples)
		if err != nil {
			t.Fatalf("Measure: %v", err)
		}
		t.Logf("method %v, window %d ns, offset PHC−realtime %d ns", s.Method, s.Window, s.Offset())
	}
	conv, err := NewConverter(c, ConverterOptions{})
	if err != nil {
		t.Fatalf("NewConverter: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := conv.Resample(); err != nil {
		t.Fatalf("Resample: %v", err)
	}
	u := conv.Uncertainty()
	t.Logf("uncertainty: %+v", u)

	// Read the PHC through its dynamic clock id between two realtime reads: the converted
	// time must fall inside that window, give or take the bound.
	var before, phcNow, after unix.Timespec
	rc, err := c.file.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var readErr error
	if err := rc.Control(func(fd uintptr) {
		if readErr = unix.ClockGettime(unix.CLOCK_REALTIME, &before); readErr != nil {
			return
		}
		if readErr = unix.ClockGettime(unix.FdToClockID(int(fd)), &phcNow); readErr != nil {
			return
		}
		readErr = unix.ClockGettime(unix.CLOCK_REALTIME, &after)
	}); err != nil || readErr != nil {
		t.Fatalf("read clocks: %v %v", err, readErr)
	}
	got := conv.ToRealtime(phcNow.Nano())
	if got < before.Nano()-u.Bound || got > after.Nano()+u.Bound {
		t.Errorf("PHC now converted to %d, outside the realtime window [%d, %d] ± %d ns", got, before.Nano(), after.Nano(), u.Bound)
	}
}

// veth has no PHC: PHCIndex says so with ErrNoPHC and a readable message.
func TestPHCIndexVeth(t *testing.T) {
	tb := bedtest.New(t, testbed.Options{Prefix: testPrefix})
	err := tb.Do(testbed.A, func() error {
		index, err := PHCIndex(tb.IfaceA)
		if !errors.Is(err, ErrNoPHC) || index != -1 {
			t.Errorf("PHCIndex(%s) = %d, %v; want -1, ErrNoPHC", tb.IfaceA, index, err)
		} else {
			msg := err.Error()
			for _, want := range []string{tb.IfaceA, "phc index -1", "software timestamping only", "no PTP hardware clock"} {
				if !strings.Contains(msg, want) {
					t.Errorf("PHCIndex error %q does not say %q", msg, want)
				}
			}
			t.Logf("PHCIndex(%s): %v", tb.IfaceA, err)
		}
		if c, err := OpenInterface(tb.IfaceA); !errors.Is(err, ErrNoPHC) {
			if c != nil {
				c.Close()
			}
			t.Errorf("OpenInterface(%s) error = %v, want ErrNoPHC", tb.IfaceA, err)
		}

		const missing = "sgphc-missing"
		_, err = PHCIndex(missing)
		if errors.Is(err, ErrNoPHC) || !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), missing) {
			t.Errorf("PHCIndex(%s) error = %v, want ENODEV naming the interface", missing, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("in namespace A: %v", err)
	}
}
