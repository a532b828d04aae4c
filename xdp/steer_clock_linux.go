package xdp

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// MeasureTAIOffset returns CLOCK_TAI − CLOCK_REALTIME. The kernel keeps the
// two exactly a whole number of seconds apart (the TAI offset NTP or PTP
// daemons set with adjtimex; 0 when nothing set it), so the measurement is
// rounded to the second. It changes only at leap seconds or when a daemon
// sets it: measure it at the start of a run and record it.
func MeasureTAIOffset() (time.Duration, error) {
	var before, tai, after unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &before); err != nil {
		return 0, os.NewSyscallError("clock_gettime(CLOCK_REALTIME)", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_TAI, &tai); err != nil {
		return 0, os.NewSyscallError("clock_gettime(CLOCK_TAI)", err)
	}
	if err := unix.ClockGettime(unix.CLOCK_REALTIME, &after); err != nil {
		return 0, os.NewSyscallError("clock_gettime(CLOCK_REALTIME)", err)
	}
	mid := before.Nano() + (after.Nano()-before.Nano())/2
	return time.Duration(tai.Nano() - mid).Round(time.Second), nil
}
