//go:build !amd64 && !arm64

package xdp

import "unsafe"

// prefetch does nothing where the package has no prefetch instruction.
func prefetch(unsafe.Pointer) {}
