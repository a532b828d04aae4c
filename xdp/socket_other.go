//go:build !linux

package xdp

import (
	"fmt"
	"runtime"
	"time"
)

// Socket is an AF_XDP socket. AF_XDP exists only on Linux.
type Socket struct{}

func errPlatform() error {
	return fmt.Errorf("af_xdp on %s/%s: %w", runtime.GOOS, runtime.GOARCH, ErrNotSupported)
}

// Open fails: AF_XDP exists only on Linux.
func Open(opts Options) (*Socket, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return nil, errPlatform()
}

func (s *Socket) FD() int                                              { return -1 }
func (s *Socket) Mode() Mode                                           { return "" }
func (s *Socket) Info() Info                                           { return Info{} }
func (s *Socket) TxMetadata() bool                                     { return false }
func (s *Socket) Stats() (Stats, error)                                { return Stats{}, errPlatform() }
func (s *Socket) AllocFrame() (uint64, bool)                           { return 0, false }
func (s *Socket) FreeFrame(uint64) error                               { return errPlatform() }
func (s *Socket) FreeFrames() int                                      { return 0 }
func (s *Socket) Frame(uint64, int) []byte                             { return nil }
func (s *Socket) MetadataBefore(uint64, int) []byte                    { return nil }
func (s *Socket) Refill(int) (int, error)                              { return 0, errPlatform() }
func (s *Socket) Receive([]Desc) (int, error)                          { return 0, errPlatform() }
func (s *Socket) Transmit([]Desc, bool) (int, error)                   { return 0, errPlatform() }
func (s *Socket) Enqueue([]Desc, bool) (int, error)                    { return 0, errPlatform() }
func (s *Socket) Kick() error                                          { return errPlatform() }
func (s *Socket) RxAvailable() bool                                    { return false }
func (s *Socket) TxStalled() bool                                      { return false }
func (s *Socket) Complete([]Completion) (int, error)                   { return 0, errPlatform() }
func (s *Socket) WaitReceive(WaitStrategy, time.Duration) (int, error) { return 0, errPlatform() }
func (s *Socket) Close() error                                         { return nil }

// WaitReceiveUntil is not supported outside Linux.
func (s *Socket) WaitReceiveUntil(WaitStrategy, time.Time) (int, error) { return 0, errPlatform() }

// ReleaseUMEMs does nothing: AF_XDP exists only on Linux.
func ReleaseUMEMs() error { return nil }

// KeptUMEMs is 0: AF_XDP exists only on Linux.
func KeptUMEMs() int { return 0 }
