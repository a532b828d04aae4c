//go:build !linux

package cpu

// threadState tracks nothing outside Linux: threads are not pinned there.
type threadState struct{}

func currentThread() threadState { return threadState{} }
func (*threadState) moved() bool { return false }
func (*threadState) keepOff()    {}
