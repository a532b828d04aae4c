//go:build !linux

package xdp

import (
	"fmt"
	"runtime"
	"time"
)

// MeasureTAIOffset returns an error: CLOCK_TAI stamps come only from Linux.
func MeasureTAIOffset() (time.Duration, error) {
	return 0, fmt.Errorf("measure tai offset: not supported on %s/%s", runtime.GOOS, runtime.GOARCH)
}
