//go:build !linux

package phc

import (
	"errors"
	"runtime"
)

var errNotSupported = errors.New("PTP hardware clocks: not supported on " + runtime.GOOS + "/" + runtime.GOARCH)

// PHCIndex is not supported on this platform.
func PHCIndex(ifname string) (int, error) { return -1, errNotSupported }

// OpenInterface is not supported on this platform.
func OpenInterface(ifname string) (*Clock, error) { return nil, errNotSupported }

// Open is not supported on this platform.
func Open(index int) (*Clock, error) { return nil, errNotSupported }
