package utcp

// Internals for the integration test, which is in package utcp_test: it
// drives an endpoint over package xdp's AF_XDP socket, and xdp imports utcp.

// Probe is probe for package utcp_test.
var Probe = probe

// PeerWindowScale is the window scale the peer announced.
func (e *Endpoint) PeerWindowScale() uint8 { return e.sndScale }

// SendMSS is the payload bytes per segment this endpoint sends.
func (e *Endpoint) SendMSS() uint32 { return e.sndMSS }
