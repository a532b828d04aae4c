package kernelpath

import "net/netip"

// PeerError reports that the network refused or could not deliver traffic to
// the peer, from an ICMP error the kernel attached to the socket (its pending
// socket error or its error queue). errors.Is(err, syscall.ECONNREFUSED) and
// friends work on it.
type PeerError struct {
	// Peer is where the traffic was going.
	Peer netip.AddrPort
	// Reason says what happened, e.g. "refused (port unreachable)".
	Reason string
	// Reporter is the host that sent the ICMP error, when the kernel said.
	Reporter netip.Addr
	// Err is the errno the kernel reported.
	Err error
}

func (e *PeerError) Error() string {
	s := "peer " + e.Peer.String() + " " + e.Reason
	if e.Reporter.IsValid() && e.Reporter != e.Peer.Addr() {
		s += " (reported by " + e.Reporter.String() + ")"
	}
	return s
}

func (e *PeerError) Unwrap() error { return e.Err }
