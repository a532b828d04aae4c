//go:build !linux

package xdp

import (
	"fmt"
	"runtime"

	"github.com/cilium/ebpf"
)

// Steering is the XDP steering program; it exists only on Linux.
type Steering struct{}

var errSteeringUnsupported = fmt.Errorf("xdp steering is not supported on %s/%s", runtime.GOOS, runtime.GOARCH)

// AttachSteering returns an error: XDP exists only on Linux.
func AttachSteering(SteerOptions) (*Steering, error) { return nil, errSteeringUnsupported }

func (*Steering) Mode() string                       { return "" }
func (*Steering) Fallback() string                   { return "" }
func (*Steering) HardwareRX() bool                   { return false }
func (*Steering) ProgramID() (ebpf.ProgramID, error) { return 0, errSteeringUnsupported }
func (*Steering) AddFlow(Flow, FlowOptions) error    { return errSteeringUnsupported }
func (*Steering) RemoveFlow(Flow) error              { return errSteeringUnsupported }
func (*Steering) Register(queue, xskFD int) error    { return errSteeringUnsupported }
func (*Steering) Unregister(queue int) error         { return errSteeringUnsupported }
func (*Steering) Stats() (SteerStats, error)         { return SteerStats{}, errSteeringUnsupported }
func (*Steering) SetDropPercent(p int) error         { return errSteeringUnsupported }
func (*Steering) DropPercent() (int, error)          { return 0, errSteeringUnsupported }
func (*Steering) Close() error                       { return nil }
