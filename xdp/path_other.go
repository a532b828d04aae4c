//go:build !linux

package xdp

import "github.com/stackgap/stackgap/bench"

// Dial fails: AF_XDP exists only on Linux.
func (p *Path) Dial(bench.DialSpec) (bench.Conn, error) { return nil, errPlatform() }

// Listen fails: AF_XDP exists only on Linux.
func (p *Path) Listen(bench.ListenSpec) (bench.Listener, error) { return nil, errPlatform() }
