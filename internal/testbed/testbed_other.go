//go:build !linux

package testbed

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
)

// errNotSupported is returned by every operation on platforms other than Linux.
var errNotSupported = fmt.Errorf("network namespace testbeds are not supported on %s/%s", runtime.GOOS, runtime.GOARCH)

// New is not supported on this platform.
func New(opts Options) (*Testbed, error) { return nil, errNotSupported }

// Close does nothing on this platform.
func (tb *Testbed) Close() error { return nil }

// Exists reports false on this platform.
func (tb *Testbed) Exists() bool { return false }

// Do is not supported on this platform.
func (tb *Testbed) Do(side Side, fn func() error) error { return errNotSupported }

// Start is not supported on this platform.
func (tb *Testbed) Start(side Side, cmd *exec.Cmd) error { return errNotSupported }

// Run is not supported on this platform.
func (tb *Testbed) Run(side Side, cmd *exec.Cmd) error { return errNotSupported }

// Output is not supported on this platform.
func (tb *Testbed) Output(side Side, name string, args ...string) ([]byte, error) {
	return nil, errNotSupported
}

// CloseOnSignal does nothing on this platform.
func (tb *Testbed) CloseOnSignal(ctx context.Context) (stop func()) { return func() {} }

// List is not supported on this platform.
func List(prefix string) ([]string, error) { return nil, errNotSupported }

// Sweep is not supported on this platform.
func Sweep(prefix string) (removed []string, err error) { return nil, errNotSupported }
