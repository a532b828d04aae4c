package cpu

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ownTimerSlack returns the calling thread's timer slack in nanoseconds.
func ownTimerSlack() (int, error) {
	return unix.PrctlRetInt(unix.PR_GET_TIMERSLACK, 0, 0, 0, 0)
}

// setOwnTimerSlack sets the calling thread's timer slack. The kernel takes 0
// to mean the thread's default, not zero, so 0 is sent as 1 ns.
func setOwnTimerSlack(ns int) error {
	return unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(max(ns, 1)), 0, 0, 0)
}

// setTimerSlack sets thread tid's timer slack through /proc/<tid>/timerslack_ns
// (a thread's own directory: the one under /proc/<pid>/task has no such
// file). For a thread other than the caller it takes CAP_SYS_NICE.
func setTimerSlack(tid, ns int) error {
	f, err := os.OpenFile("/proc/"+strconv.Itoa(tid)+"/timerslack_ns", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.Itoa(max(ns, 1)))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
