package kernelpath

import (
	"golang.org/x/sys/unix"
)

// isPeerErrno reports whether errno is how the kernel passes an ICMP error on
// a connected socket to its next send or receive.
func isPeerErrno(errno unix.Errno) bool {
	switch errno {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN:
		return true
	}
	return false
}

// peerReason turns the errno an ICMP error was mapped to into words.
func peerReason(errno unix.Errno) string {
	switch errno {
	case unix.ECONNREFUSED:
		return "refused (port unreachable)"
	case unix.EHOSTUNREACH:
		return "unreachable (host unreachable)"
	case unix.ENETUNREACH:
		return "unreachable (network unreachable)"
	case unix.EHOSTDOWN:
		return "unreachable (host down)"
	case unix.EACCES, unix.EPERM:
		return "unreachable (administratively prohibited)"
	case unix.EMSGSIZE:
		return "unreachable (message too big for the path MTU)"
	case unix.EPROTO, unix.ENOPROTOOPT:
		return "unreachable (protocol unreachable)"
	}
	return "unreachable (" + errno.Error() + ")"
}
