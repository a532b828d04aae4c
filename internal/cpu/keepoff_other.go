//go:build !linux

package cpu

// Exclusive reports false: threads are not pinned outside Linux.
func Exclusive() bool { return false }

// TimersCoalesced reports false: threads are not pinned outside Linux.
func TimersCoalesced() bool { return false }
