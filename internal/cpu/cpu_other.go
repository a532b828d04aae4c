//go:build !linux

package cpu

import (
	"fmt"
	"runtime"
)

// Pin locks the calling goroutine to its OS thread. Binding to a CPU is
// supported on Linux only.
func Pin(cpu int) (restore func(), err error) {
	if cpu >= 0 {
		return nil, fmt.Errorf("pin to cpu %d: not supported on %s/%s", cpu, runtime.GOOS, runtime.GOARCH)
	}
	runtime.LockOSThread()
	return runtime.UnlockOSThread, nil
}

// Current returns -1: not supported outside Linux.
func Current() int { return -1 }

// Check reports that pinning is not supported, unless cpu < 0.
func Check(cpu int) error {
	if cpu >= 0 {
		return fmt.Errorf("pin to cpu %d: not supported on %s/%s", cpu, runtime.GOOS, runtime.GOARCH)
	}
	return nil
}
