package cpu

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// onlinePath lists the CPUs the kernel has online, e.g. "0-1".
const onlinePath = "/sys/devices/system/cpu/online"

// Pin locks the calling goroutine to its OS thread and, when cpu >= 0, binds
// that thread to cpu. cpu must be online and one the process may use (its
// affinity, as inherited). While the thread is pinned, the process's other
// threads are kept off its CPU when the process may use another one (see
// reservations).
//
// restore gives the thread back the affinity of the process's other threads
// and unlocks it; call it from the same goroutine. On error the thread is
// left unlocked and unchanged.
func Pin(cpu int) (restore func(), err error) {
	runtime.LockOSThread()
	if cpu < 0 {
		return runtime.UnlockOSThread, nil
	}
	process, err := checkIn(cpu)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	if err := reserve(cpu, process); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("pin to cpu %d: %w", cpu, os.NewSyscallError("sched_setaffinity", err))
	}
	return func() {
		restored, thaw := unreserve()
		// If the mask cannot be put back, keep the thread locked: the
		// runtime then ends it with the goroutine instead of reusing a
		// thread stuck on one CPU.
		if restored {
			runtime.UnlockOSThread()
		}
		if thaw && restored && claimsReleased() {
			// The default is computed from this thread's affinity.
			runtime.SetDefaultGOMAXPROCS()
		}
	}, nil
}

// Current returns the CPU the calling thread is running on (getcpu(2)), or -1
// if the kernel does not say. Without pinning the answer can be stale at once.
func Current() int {
	var cpu, node uint32
	_, _, errno := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), uintptr(unsafe.Pointer(&node)), 0)
	if errno != 0 {
		return -1
	}
	return int(cpu)
}

// usable lists the CPUs that are both online and in mask, ascending.
func usable(mask *unix.CPUSet) ([]int, error) {
	b, err := os.ReadFile(onlinePath)
	if err != nil {
		return nil, fmt.Errorf("read online cpus: %w", err)
	}
	online, err := parseList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("read online cpus from %s: %w", onlinePath, err)
	}
	var cpus []int
	for _, c := range online {
		if c < 1024 && mask.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

func contains(list []int, v int) bool {
	for _, c := range list {
		if c == v {
			return true
		}
	}
	return false
}

// parseList parses the kernel's CPU list format: "0-3,5,7-8".
func parseList(s string) ([]int, error) {
	var cpus []int
	if s == "" {
		return cpus, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil || first < 0 {
			return nil, fmt.Errorf("bad cpu list %q", s)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil || last < first {
				return nil, fmt.Errorf("bad cpu list %q", s)
			}
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// formatList writes ascending CPUs in the kernel's list format.
func formatList(cpus []int) string {
	if len(cpus) == 0 {
		return "none"
	}
	var b strings.Builder
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(cpus[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Check reports whether the process could pin a thread to cpu (cpu < 0: no
// pinning, always fine), with the same message Pin would give.
func Check(cpu int) error {
	if cpu < 0 {
		return nil
	}
	_, err := checkIn(cpu)
	return err
}

// checkIn returns the affinity the process may use (allowedMask) when cpu
// is online and in it, and otherwise why not.
func checkIn(cpu int) (unix.CPUSet, error) {
	mask, err := allowedMask()
	if err != nil {
		return mask, fmt.Errorf("check cpu %d: %w", cpu, os.NewSyscallError("sched_getaffinity", err))
	}
	available, err := usable(&mask)
	if err != nil {
		return mask, fmt.Errorf("check cpu %d: %w", cpu, err)
	}
	if !contains(available, cpu) {
		return mask, fmt.Errorf("cpu %d not available (allowed: %s)", cpu, formatList(available))
	}
	return mask, nil
}
