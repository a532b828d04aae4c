package results

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func TestCollectEnvironmentLoopback(t *testing.T) {
	env, err := CollectEnvironment("lo")
	if err != nil {
		t.Fatalf("CollectEnvironment(lo): %v", err)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if env.Hostname != host || env.Kernel != unix.ByteSliceToString(uts.Release[:]) {
		t.Errorf("unexpected host or kernel: %q %q", env.Hostname, env.Kernel)
	}
	if env.CPUs < 1 || env.CPUModel == "" || env.ClockSource == "" {
		t.Errorf("CPU or clock source missing: %+v", env)
	}
	ifc := env.Interface
	if ifc == nil || ifc.Name != "lo" || ifc.MTU <= 0 {
		t.Fatalf("unexpected interface: %+v", ifc)
	}
	if len(ifc.Features) == 0 {
		t.Errorf("no ethtool features read for lo")
	}
	ts := ifc.Timestamping
	if ts == nil || ts.PHCIndex != -1 || !slices.Contains(ts.Capabilities, "software-receive") {
		t.Errorf("unexpected time stamping information for lo: %+v", ts)
	}
	// lo has no ethtool driver information: that is a note, not an error.
	if ifc.Driver == "" && !notesMention(env.Notes, "driver info") {
		t.Errorf("driver missing without a note: %v", env.Notes)
	}
	t.Logf("lo: mtu %d, %d features, time stamping %+v, notes %q", ifc.MTU, len(ifc.Features), *ts, env.Notes)
}

func TestCollectEnvironmentUnknownInterface(t *testing.T) {
	name := fmt.Sprintf("sgx%d%03d", os.Getpid()%100000, rand.IntN(1000))
	env, err := CollectEnvironment(name)
	if err != nil {
		t.Fatalf("CollectEnvironment(%s) failed instead of noting what is missing: %v", name, err)
	}
	if env.Hostname == "" || env.Kernel == "" {
		t.Errorf("host information missing: %+v", env)
	}
	if env.Interface == nil || env.Interface.Name != name || env.Interface.MTU != 0 {
		t.Errorf("unexpected interface: %+v", env.Interface)
	}
	for _, piece := range []string{"interface " + name + ": ", "driver info", "features", "time stamping"} {
		if !notesMention(env.Notes, piece) {
			t.Errorf("no note about %q: %q", piece, env.Notes)
		}
	}
}

func notesMention(notes []string, s string) bool {
	return slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, s) })
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root, and CI=true")
	}
	t.Skip("needs root")
}

// TestCollectEnvironmentInNetns runs CollectEnvironment on a locked thread in
// a fresh network namespace and reads a veth there: the interface is found in
// the caller's namespace, not the process's.
func TestCollectEnvironmentInNetns(t *testing.T) {
	requireRoot(t)
	suffix := fmt.Sprintf("%d%03d", os.Getpid()%100000, rand.IntN(1000))
	vethA, vethB := "sga"+suffix, "sgb"+suffix

	type outcome struct {
		env Environment
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		// The thread is never unlocked: if restoring the namespace failed it
		// must not run other goroutines, and it ends with this goroutine.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- outcome{err: fmt.Errorf("get netns: %w", err)}
			return
		}
		defer orig.Close()
		ns, err := netns.New() // also switches this thread into it
		if err != nil {
			done <- outcome{err: fmt.Errorf("new netns: %w", err)}
			return
		}
		// The namespace is anonymous: it and its veth pair vanish once this
		// handle is closed and the thread has left it.
		defer ns.Close()
		defer netns.Set(orig)

		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vethA, MTU: 1400}, PeerName: vethB}
		if err := netlink.LinkAdd(veth); err != nil {
			done <- outcome{err: fmt.Errorf("add veth: %w", err)}
			return
		}
		env, err := CollectEnvironment(vethA)
		done <- outcome{env: env, err: err}
	}()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	ifc := res.env.Interface
	if ifc == nil || ifc.Driver != "veth" || ifc.MTU != 1400 || len(ifc.Features) == 0 || ifc.Timestamping == nil {
		t.Fatalf("unexpected interface in the test namespace: %+v (notes %q)", ifc, res.env.Notes)
	}
	if !slices.Contains(ifc.Timestamping.Capabilities, "software-transmit") {
		t.Errorf("veth lacks software-transmit: %+v", ifc.Timestamping)
	}
	t.Logf("veth: driver %s %s, bus %q, time stamping %+v, notes %q", ifc.Driver, ifc.DriverVersion, ifc.BusInfo, *ifc.Timestamping, res.env.Notes)

	// From the test's own namespace the interface does not exist.
	outside, err := CollectEnvironment(vethA)
	if err != nil {
		t.Fatal(err)
	}
	if outside.Interface.Driver != "" || outside.Interface.MTU != 0 {
		t.Errorf("interface %s of the test namespace is visible outside it: %+v", vethA, outside.Interface)
	}
}

func TestFlagNames(t *testing.T) {
	tests := []struct {
		mask uint64
		name func(int) string
		want []string
	}{
		{0, timestampingFlagName, []string{}},
		{unix.SOF_TIMESTAMPING_TX_SOFTWARE | unix.SOF_TIMESTAMPING_RX_SOFTWARE | unix.SOF_TIMESTAMPING_SOFTWARE,
			timestampingFlagName, []string{"software-transmit", "software-receive", "software-system-clock"}},
		{1 << 40, timestampingFlagName, []string{"bit-40"}},
		{1<<unix.HWTSTAMP_TX_OFF | 1<<unix.HWTSTAMP_TX_ON, hwTxTypeName, []string{"off", "on"}},
		{1<<unix.HWTSTAMP_FILTER_NONE | 1<<unix.HWTSTAMP_FILTER_ALL | 1<<unix.HWTSTAMP_FILTER_NTP_ALL, hwRxFilterName,
			[]string{"none", "all", "ntp-all"}},
	}
	for _, tt := range tests {
		if got := flagNames(tt.mask, tt.name); !slices.Equal(got, tt.want) {
			t.Errorf("flagNames(%#x): got %q, want %q", tt.mask, got, tt.want)
		}
	}
}

func TestReadCPUInfo(t *testing.T) {
	path := t.TempDir() + "/cpuinfo"
	content := "processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU @ 1.00GHz\n\nprocessor\t: 1\nmodel name\t: Test CPU @ 1.00GHz\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	model, cpus, err := readCPUInfo(path)
	if err != nil || model != "Test CPU @ 1.00GHz" || cpus != 2 {
		t.Errorf("readCPUInfo: got %q %d %v", model, cpus, err)
	}
	if err := os.WriteFile(path, []byte("nothing here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readCPUInfo(path); err == nil {
		t.Errorf("readCPUInfo of a file without processors succeeded")
	}
}
