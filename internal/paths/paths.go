// Package paths lists the probe paths this build of stackgap can measure, so
// the sender and the reflector register the same ones.
package paths

import (
	"flag"
	"fmt"
	"net"
	"net/netip"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/kernelpath"
	"github.com/stackgap/stackgap/xdp"
)

// Available returns the paths by name: the kernel socket path and the AF_XDP
// path with the given options.
func Available(xdpOpts xdp.PathOptions) map[string]bench.Path {
	k, x := kernelpath.NewPath(), xdp.NewPath(xdpOpts)
	return map[string]bench.Path{k.Name(): withXDPPass{k}, x.Name(): x}
}

// XDPFlags are the AF_XDP path's command-line flags, shared by both commands.
type XDPFlags struct {
	Queue      int
	Mode       string
	Steer      string
	HardwareRX bool
	Drop       int
}

// Register adds the flags to fs.
func (f *XDPFlags) Register(fs *flag.FlagSet) {
	fs.IntVar(&f.Queue, "queue", 0, "AF_XDP path: NIC queue `id` to bind")
	fs.StringVar(&f.Mode, "xdp-mode", "auto", "AF_XDP path: socket mode auto (zero-copy, else copy), copy or zerocopy")
	fs.StringVar(&f.Steer, "xdp-steer", "auto", "AF_XDP path: XDP attach mode auto (driver, else generic), driver or generic")
	fs.BoolVar(&f.HardwareRX, "xdp-hw-rx", false, "AF_XDP path: load a device-bound program that reads NIC RX timestamps")
	fs.IntVar(&f.Drop, "xdp-drop", 0, "AF_XDP path: drop this `percent` of probe-flow frames in the XDP program (fault injection: nftables cannot drop AF_XDP traffic)")
}

// Options validates the flags and returns the AF_XDP path's options.
func (f *XDPFlags) Options() (xdp.PathOptions, error) {
	mode, err := xdp.ParseMode(f.Mode)
	if err != nil {
		return xdp.PathOptions{}, fmt.Errorf("--xdp-mode: %w", err)
	}
	switch f.Steer {
	case xdp.SteerModeAuto, xdp.SteerModeDriver, xdp.SteerModeGeneric:
	default:
		return xdp.PathOptions{}, fmt.Errorf("--xdp-steer: unknown mode %q (auto, driver or generic)", f.Steer)
	}
	if f.Queue < 0 {
		return xdp.PathOptions{}, fmt.Errorf("--queue: invalid queue id %d", f.Queue)
	}
	if f.Drop < 0 || f.Drop > 100 {
		return xdp.PathOptions{}, fmt.Errorf("--xdp-drop: invalid share %d%% (0 to 100)", f.Drop)
	}
	return xdp.PathOptions{Queue: f.Queue, Mode: mode, SteerMode: f.Steer, HardwareRX: f.HardwareRX, DropPercent: f.Drop}, nil
}

func interfaceIndex(name string) (int, error) {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifc.Index, nil
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
