// Package caps checks the process's effective Linux capabilities, so a
// privileged operation can fail with a message naming what is missing
// instead of a bare EPERM.
package caps

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability is a Linux capability number (include/uapi/linux/capability.h).
type Capability uint

// The capabilities stackgap uses.
const (
	NetAdmin Capability = 12
	NetRaw   Capability = 13
	SysAdmin Capability = 21
	Perfmon  Capability = 38
	BPF      Capability = 39
)

var names = map[Capability]string{
	NetAdmin: "CAP_NET_ADMIN", NetRaw: "CAP_NET_RAW", SysAdmin: "CAP_SYS_ADMIN",
	Perfmon: "CAP_PERFMON", BPF: "CAP_BPF",
}

func (c Capability) String() string {
	if n, ok := names[c]; ok {
		return n
	}
	return "CAP_" + strconv.Itoa(int(c))
}

// Effective returns the effective capability set of the calling process.
func Effective() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			set, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parse CapEff %q: %w", v, err)
			}
			return set, nil
		}
	}
	return 0, fmt.Errorf("read capabilities: no CapEff line in /proc/self/status")
}

// Require returns an error naming every capability in need that the process
// lacks, and what needs it.
func Require(what string, need ...Capability) error {
	set, err := Effective()
	if err != nil {
		return err
	}
	var missing []string
	for _, c := range need {
		if set&(1<<c) == 0 {
			missing = append(missing, c.String())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s needs %s: run as root (sudo) or grant the capabilities", what, strings.Join(missing, " and "))
}
