//go:build amd64 || arm64

package xdp

import "unsafe"

// prefetch asks the CPU to start loading the cache line at p into its
// caches (PREFETCHT0, PRFM PLDL1KEEP) and returns at once. It never faults.
//
//go:noescape
func prefetch(p unsafe.Pointer)
