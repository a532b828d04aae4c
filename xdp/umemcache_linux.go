package xdp

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// maxKeptUMEMs bounds the UMEM memory Close keeps for reuse (ReuseUMEM): enough for a few
// sessions that close while others open, little enough not to hold on to much.
const maxKeptUMEMs = 4

// keptUMEMs holds the mappings that sockets opened with ReuseUMEM left behind on Close.
var keptUMEMs struct {
	sync.Mutex
	maps [][]byte
}

// mapUMEM returns size bytes of UMEM memory: with reuse, a kept mapping of that size, zeroed
// so that the socket sees what a fresh one would (no frame, metadata or stamp of an earlier
// session); otherwise a new anonymous mapping, populated.
func mapUMEM(size int, reuse bool) ([]byte, error) {
	if reuse {
		keptUMEMs.Lock()
		for i, m := range keptUMEMs.maps {
			if len(m) == size {
				keptUMEMs.maps = append(keptUMEMs.maps[:i], keptUMEMs.maps[i+1:]...)
				keptUMEMs.Unlock()
				clear(m)
				return m, nil
			}
		}
		keptUMEMs.Unlock()
	}
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("map %d-byte umem: %w", size, os.NewSyscallError("mmap", err))
	}
	return m, nil
}

// unmapUMEM gives back UMEM memory no socket uses any more: with reuse it is kept for the next
// mapUMEM of its size while fewer than maxKeptUMEMs are kept, otherwise unmapped.
func unmapUMEM(m []byte, reuse bool) error {
	if reuse {
		keptUMEMs.Lock()
		if len(keptUMEMs.maps) < maxKeptUMEMs {
			keptUMEMs.maps = append(keptUMEMs.maps, m)
			keptUMEMs.Unlock()
			return nil
		}
		keptUMEMs.Unlock()
	}
	if err := unix.Munmap(m); err != nil {
		return fmt.Errorf("unmap umem: %w", os.NewSyscallError("munmap", err))
	}
	return nil
}

// ReleaseUMEMs unmaps the UMEM memory that sockets opened with ReuseUMEM kept after Close.
// A long-lived process calls it when it is done with AF_XDP (stackgap-reflect on shutdown).
func ReleaseUMEMs() error {
	keptUMEMs.Lock()
	maps := keptUMEMs.maps
	keptUMEMs.maps = nil
	keptUMEMs.Unlock()
	var errs []error
	for _, m := range maps {
		if err := unix.Munmap(m); err != nil {
			errs = append(errs, fmt.Errorf("unmap umem: %w", os.NewSyscallError("munmap", err)))
		}
	}
	return errors.Join(errs...)
}

// KeptUMEMs is the number of UMEM mappings kept for reuse.
func KeptUMEMs() int {
	keptUMEMs.Lock()
	defer keptUMEMs.Unlock()
	return len(keptUMEMs.maps)
}
