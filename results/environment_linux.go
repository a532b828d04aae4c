package results

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"os"
	"runtime"
	"strings"

	"github.com/safchain/ethtool"
	"golang.org/x/sys/unix"
)

// CollectEnvironment describes this host and, when iface is not empty, that
// network interface (driver, features, time stamping, MTU).
//
// The interface is looked up in the calling thread's network namespace: the
// ethtool socket is opened inside the call, so a caller on a locked OS thread
// that switched namespace gets that namespace's interface.
//
// What cannot be read is explained in Notes; the error is non-nil only when
// nothing at all could be read.
func CollectEnvironment(iface string) (Environment, error) {
	var env Environment
	var problems []error
	note := func(err error) {
		problems = append(problems, err)
		env.Notes = append(env.Notes, err.Error())
	}
	read := 0

	if host, err := os.Hostname(); err != nil {
		note(fmt.Errorf("hostname: %w", err))
	} else {
		env.Hostname = host
		read++
	}

	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		note(fmt.Errorf("kernel release: %w", os.NewSyscallError("uname", err)))
	} else {
		env.Kernel = unix.ByteSliceToString(uts.Release[:])
		read++
	}

	if model, cpus, err := readCPUInfo("/proc/cpuinfo"); err != nil {
		note(fmt.Errorf("cpu model: %w", err))
		env.CPUs = runtime.NumCPU()
	} else {
		env.CPUModel, env.CPUs = model, cpus
		read++
	}

	if cs, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err != nil {
		note(fmt.Errorf("clock source: %w", err))
	} else {
		env.ClockSource = strings.TrimSpace(string(cs))
		read++
	}

	if iface != "" {
		info, ifaceRead := collectInterface(iface, note)
		env.Interface = info
		read += ifaceRead
	}

	if read == 0 {
		return env, fmt.Errorf("collect environment: nothing could be read: %w", errors.Join(problems...))
	}
	return env, nil
}

// readCPUInfo returns the first "model name" and the number of "processor"
// entries of a /proc/cpuinfo file.
func readCPUInfo(path string) (model string, cpus int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "processor":
			cpus++
		case "model name":
			if model == "" {
				model = strings.TrimSpace(value)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", 0, fmt.Errorf("read %s: %w", path, err)
	}
	if cpus == 0 {
		return "", 0, fmt.Errorf("read %s: no processor entries", path)
	}
	if model == "" {
		// Not every architecture has the field; the count is still good.
		model = "unknown"
	}
	return model, cpus, nil
}

// collectInterface reads what it can about iface and returns how many pieces
// it read.
func collectInterface(iface string, note func(error)) (*Interface, int) {
	info := &Interface{Name: iface}
	read := 0

	if ifi, err := net.InterfaceByName(iface); err != nil {
		note(fmt.Errorf("interface %s: %w", iface, err))
	} else {
		info.MTU = ifi.MTU
		read++
	}

	et, err := ethtool.NewEthtool()
	if err != nil {
		note(fmt.Errorf("interface %s: ethtool: %w", iface, os.NewSyscallError("socket", err)))
		return info, read
	}
	defer et.Close()

	if drv, err := et.DriverInfo(iface); err != nil {
		note(fmt.Errorf("interface %s: driver info: %w", iface, os.NewSyscallError("ioctl ETHTOOL_GDRVINFO", err)))
	} else {
		info.Driver, info.DriverVersion = drv.Driver, drv.Version
		info.Firmware, info.BusInfo = drv.FwVersion, drv.BusInfo
		read++
	}

	if features, err := et.Features(iface); err != nil {
		note(fmt.Errorf("interface %s: features: %w", iface, os.NewSyscallError("ioctl ETHTOOL_GFEATURES", err)))
	} else {
		info.Features = features
		read++
	}

	if ts, err := et.GetTimestampingInformation(iface); err != nil {
		note(fmt.Errorf("interface %s: time stamping: %w", iface, os.NewSyscallError("ioctl ETHTOOL_GET_TS_INFO", err)))
	} else {
		info.Timestamping = &Timestamping{
			Capabilities: flagNames(uint64(ts.SoTimestamping), timestampingFlagName),
			PHCIndex:     int(ts.PhcIndex),
			TxTypes:      flagNames(uint64(ts.TxTypes), hwTxTypeName),
			RxFilters:    flagNames(uint64(ts.RxFilters), hwRxFilterName),
		}
		read++
	}
	return info, read
}

// flagNames names the set bits of mask, lowest first; bits without a name are
// "bit-N".
func flagNames(mask uint64, name func(bit int) string) []string {
	out := []string{}
	for mask != 0 {
		bit := bits.TrailingZeros64(mask)
		mask &^= 1 << bit
		if n := name(bit); n != "" {
			out = append(out, n)
		} else {
			out = append(out, fmt.Sprintf("bit-%d", bit))
		}
	}
	return out
}

// timestampingFlagName names SOF_TIMESTAMPING_* bit numbers as ethtool -T does.
func timestampingFlagName(bit int) string {
	switch 1 << bit {
	case unix.SOF_TIMESTAMPING_TX_HARDWARE:
		return "hardware-transmit"
	case unix.SOF_TIMESTAMPING_TX_SOFTWARE:
		return "software-transmit"
	case unix.SOF_TIMESTAMPING_RX_HARDWARE:
		return "hardware-receive"
	case unix.SOF_TIMESTAMPING_RX_SOFTWARE:
		return "software-receive"
	case unix.SOF_TIMESTAMPING_SOFTWARE:
		return "software-system-clock"
	case unix.SOF_TIMESTAMPING_SYS_HARDWARE:
		return "hardware-legacy-clock"
	case unix.SOF_TIMESTAMPING_RAW_HARDWARE:
		return "hardware-raw-clock"
	case unix.SOF_TIMESTAMPING_OPT_ID:
		return "option-id"
	case unix.SOF_TIMESTAMPING_TX_SCHED:
		return "sched-transmit"
	case unix.SOF_TIMESTAMPING_TX_ACK:
		return "ack-transmit"
	case unix.SOF_TIMESTAMPING_OPT_CMSG:
		return "option-cmsg"
	case unix.SOF_TIMESTAMPING_OPT_TSONLY:
		return "option-tsonly"
	case unix.SOF_TIMESTAMPING_OPT_STATS:
		return "option-stats"
	case unix.SOF_TIMESTAMPING_OPT_PKTINFO:
		return "option-pktinfo"
	case unix.SOF_TIMESTAMPING_OPT_TX_SWHW:
		return "option-tx-swhw"
	case unix.SOF_TIMESTAMPING_BIND_PHC:
		return "bind-phc"
	case unix.SOF_TIMESTAMPING_OPT_ID_TCP:
		return "option-id-tcp"
	}
	return ""
}

// hwTxTypeName names the HWTSTAMP_TX_* modes; the TX types mask has bit
// (1 << mode) set for each supported mode.
func hwTxTypeName(mode int) string {
	switch mode {
	case unix.HWTSTAMP_TX_OFF:
		return "off"
	case unix.HWTSTAMP_TX_ON:
		return "on"
	case unix.HWTSTAMP_TX_ONESTEP_SYNC:
		return "onestep-sync"
	case unix.HWTSTAMP_TX_ONESTEP_P2P:
		return "onestep-p2p"
	}
	return ""
}

// hwRxFilterName names the HWTSTAMP_FILTER_* filters; the RX filters mask has
// bit (1 << filter) set for each supported filter.
func hwRxFilterName(filter int) string {
	switch filter {
	case unix.HWTSTAMP_FILTER_NONE:
		return "none"
	case unix.HWTSTAMP_FILTER_ALL:
		return "all"
	case unix.HWTSTAMP_FILTER_SOME:
		return "some"
	case unix.HWTSTAMP_FILTER_PTP_V1_L4_EVENT:
		return "ptpv1-l4-event"
	case unix.HWTSTAMP_FILTER_PTP_V1_L4_SYNC:
		return "ptpv1-l4-sync"
	case unix.HWTSTAMP_FILTER_PTP_V1_L4_DELAY_REQ:
		return "ptpv1-l4-delay-req"
	case unix.HWTSTAMP_FILTER_PTP_V2_L4_EVENT:
		return "ptpv2-l4-event"
	case unix.HWTSTAMP_FILTER_PTP_V2_L4_SYNC:
		return "ptpv2-l4-sync"
	case unix.HWTSTAMP_FILTER_PTP_V2_L4_DELAY_REQ:
		return "ptpv2-l4-delay-req"
	case unix.HWTSTAMP_FILTER_PTP_V2_L2_EVENT:
		return "ptpv2-l2-event"
	case unix.HWTSTAMP_FILTER_PTP_V2_L2_SYNC:
		return "ptpv2-l2-sync"
	case unix.HWTSTAMP_FILTER_PTP_V2_L2_DELAY_REQ:
		return "ptpv2-l2-delay-req"
	case unix.HWTSTAMP_FILTER_PTP_V2_EVENT:
		return "ptpv2-event"
	case unix.HWTSTAMP_FILTER_PTP_V2_SYNC:
		return "ptpv2-sync"
	case unix.HWTSTAMP_FILTER_PTP_V2_DELAY_REQ:
		return "ptpv2-delay-req"
	case unix.HWTSTAMP_FILTER_NTP_ALL:
		return "ntp-all"
	}
	return ""
}
