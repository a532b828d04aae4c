// Package bench is the measurement engine: the probe wire format, the control
// protocol between sender and reflector, and the sender and reflector loops
// that drive a path (kernel sockets, AF_XDP) through the small Conn interface
// and join every probe's stamps into per-layer histograms.
package bench
