// Package paths lists the probe paths this build of stackgap can measure, so
// the sender and the reflector register the same ones.
package paths

import (
	"net"
	"net/netip"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/kernelpath"
)

// Available returns the paths by name.
func Available() map[string]bench.Path {
	k := kernelpath.NewPath()
	return map[string]bench.Path{k.Name(): k}
}

// InterfaceOf returns the name of the interface that holds addr, or "" when
// none does (e.g. an unspecified or loopback-routed address).
func InterfaceOf(addr netip.Addr) string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Unmap() == addr.Unmap() {
					return ifc.Name
				}
			}
		}
	}
	return ""
}
