//go:build !linux

package cpu

// Exclusive reports false: threads are not pinned outside Linux.
func Exclusive() bool { return false }
