package phc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PHCIndex returns N of the PTP hardware clock /dev/ptpN of the network interface ifname in the
// calling thread's network namespace, from ethtool's timestamping information
// (SIOCETHTOOL ETHTOOL_GET_TS_INFO). An interface without one (phc index -1, as veth) gives an
// error that matches ErrNoPHC.
func PHCIndex(ifname string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("find PTP hardware clock of %q: %w", ifname, os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolTsInfo(fd, ifname)
	if err != nil {
		return -1, fmt.Errorf("find PTP hardware clock of %q: %w", ifname,
			os.NewSyscallError("ioctl SIOCETHTOOL ETHTOOL_GET_TS_INFO", err))
	}
	if info.Phc_index < 0 {
		return -1, fmt.Errorf("find PTP hardware clock of %q: ethtool reports phc index %d (%s): %w",
			ifname, info.Phc_index, describeTimestamping(info.So_timestamping), ErrNoPHC)
	}
	return int(info.Phc_index), nil
}

// describeTimestamping says which kind of timestamping an SOF_TIMESTAMPING_* capability mask
// offers.
func describeTimestamping(caps uint32) string {
	const hardware = unix.SOF_TIMESTAMPING_TX_HARDWARE | unix.SOF_TIMESTAMPING_RX_HARDWARE | unix.SOF_TIMESTAMPING_RAW_HARDWARE
	const software = unix.SOF_TIMESTAMPING_TX_SOFTWARE | unix.SOF_TIMESTAMPING_RX_SOFTWARE | unix.SOF_TIMESTAMPING_SOFTWARE
	switch {
	case caps&hardware != 0:
		return "hardware timestamping without a clock"
	case caps&software != 0:
		return "software timestamping only"
	}
	return "no timestamping"
}

// OpenInterface opens the PTP hardware clock of the network interface ifname: PHCIndex, then
// Open.
func OpenInterface(ifname string) (*Clock, error) {
	index, err := PHCIndex(ifname)
	if err != nil {
		return nil, err
	}
	return Open(index)
}

// Open opens the PTP hardware clock /dev/ptpN, N = index, read-only, and checks that it is one.
func Open(index int) (*Clock, error) {
	if index < 0 {
		return nil, fmt.Errorf("invalid PTP clock index: %d", index)
	}
	return openPath("/dev/ptp"+strconv.Itoa(index), index)
}

// openPath opens the PTP clock device at path as clock index.
func openPath(path string, index int) (*Clock, error) {
	file, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("open PTP clock %d: no such clock (see /sys/class/ptp): %w", index, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open PTP clock %d: %w", index, err)
	}
	dev := ptpDevice{file: file}
	var caps *unix.PtpClockCaps
	err = dev.control(func(fd int) (err error) {
		caps, err = unix.IoctlPtpClockGetcaps(fd)
		return os.NewSyscallError("ioctl PTP_CLOCK_GETCAPS2", err)
	})
	if err != nil {
		file.Close()
		if errors.Is(err, unix.ENOTTY) {
			return nil, fmt.Errorf("open PTP clock %d: %s is not a PTP clock: %w", index, path, err)
		}
		return nil, fmt.Errorf("open PTP clock %d: %w", index, err)
	}
	c := &Clock{index: index, file: file, m: measurer{src: dev}}
	// A clock without a cross-timestamp says so; do not ask it for one.
	c.m.noPrecise = caps.Cross_timestamping == 0
	return c, nil
}

// ptpDevice is the offsetSource of a /dev/ptpN file.
type ptpDevice struct {
	file *os.File
}

// control runs fn on the device's file descriptor, retrying while it fails with EINTR.
func (d ptpDevice) control(fn func(fd int) error) error {
	rc, err := d.file.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	err = rc.Control(func(fd uintptr) {
		for {
			fnErr = fn(int(fd))
			if !errors.Is(fnErr, unix.EINTR) {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return fnErr
}

// unsupported makes an ioctl error of a request the kernel or driver lacks match
// errors.ErrUnsupported: EOPNOTSUPP already does, ENOTTY (a kernel without the request) does not.
func unsupported(op string, err error) error {
	if errors.Is(err, unix.ENOTTY) {
		return fmt.Errorf("%w: %w", errors.ErrUnsupported, os.NewSyscallError(op, err))
	}
	return os.NewSyscallError(op, err)
}

func (d ptpDevice) precise() (crossStamp, error) {
	var cs crossStamp
	err := d.control(func(fd int) error {
		v, err := unix.IoctlPtpSysOffsetPrecise(fd)
		if err != nil {
			return unsupported("ioctl PTP_SYS_OFFSET_PRECISE2", err)
		}
		cs = crossStamp{phc: ptpNanos(v.Device), realtime: ptpNanos(v.Realtime)}
		return nil
	})
	return cs, err
}

func (d ptpDevice) extended(n int) ([]reading, error) {
	var rs []reading
	err := d.control(func(fd int) error {
		v, err := unix.IoctlPtpSysOffsetExtended(fd, uint(n))
		if err != nil {
			return unsupported("ioctl PTP_SYS_OFFSET_EXTENDED2", err)
		}
		rs, err = extendedReadings(v)
		return err
	})
	return rs, err
}

func (d ptpDevice) basic(n int) ([]reading, error) {
	var rs []reading
	err := d.control(func(fd int) error {
		v := unix.PtpSysOffset{Samples: uint32(n)}
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.PTP_SYS_OFFSET2, uintptr(unsafe.Pointer(&v)))
		if errno != 0 {
			return unsupported("ioctl PTP_SYS_OFFSET2", errno)
		}
		var err error
		rs, err = basicReadings(&v)
		return err
	})
	return rs, err
}

// extendedReadings returns the [before, PHC, after] readings of a PTP_SYS_OFFSET_EXTENDED result.
func extendedReadings(v *unix.PtpSysOffsetExtended) ([]reading, error) {
	if v.Samples < 1 || v.Samples > uint32(len(v.Ts)) {
		return nil, fmt.Errorf("PTP_SYS_OFFSET_EXTENDED returned %d samples (want 1 to %d)", v.Samples, len(v.Ts))
	}
	rs := make([]reading, v.Samples)
	for i := range rs {
		ts := &v.Ts[i]
		rs[i] = reading{before: ptpNanos(ts[0]), phc: ptpNanos(ts[1]), after: ptpNanos(ts[2])}
	}
	return rs, nil
}

// basicReadings returns the readings of a PTP_SYS_OFFSET result, whose n samples alternate
// realtime and PHC times: realtime₀, PHC₀, realtime₁, …, PHCₙ₋₁, realtimeₙ.
func basicReadings(v *unix.PtpSysOffset) ([]reading, error) {
	if v.Samples < 1 || 2*int(v.Samples)+1 > len(v.Ts) {
		return nil, fmt.Errorf("PTP_SYS_OFFSET returned %d samples (want 1 to %d)", v.Samples, (len(v.Ts)-1)/2)
	}
	rs := make([]reading, v.Samples)
	for i := range rs {
		rs[i] = reading{before: ptpNanos(v.Ts[2*i]), phc: ptpNanos(v.Ts[2*i+1]), after: ptpNanos(v.Ts[2*i+2])}
	}
	return rs, nil
}

// ptpNanos returns a PTP clock time in nanoseconds.
func ptpNanos(t unix.PtpClockTime) int64 { return t.Sec*1e9 + int64(t.Nsec) }
