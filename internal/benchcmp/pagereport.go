package benchcmp

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// Free page reporting (virtio-balloon's reporting queue) hands a VM's free memory back to the
// host in 2-MiB blocks, about two seconds after a process frees it. dpdk-testpmd frees the
// gigabyte it runs with (-m 1024) when it exits, and the host's discarding of it stalled the
// next stackgap-reflect run on the test VMs for 34–36 ms (the one after it for 8–13 ms), a
// stall no testpmd run ever met, because stackgap's processes free little. So after testpmd
// exits, the harness waits for that reporting to be over before the next run.
const (
	// pageReportingDelay is how long after the free the kernel starts reporting
	// (page_reporting_delay in mm/page_reporting.c: 2 s) plus margin.
	pageReportingDelay = 2500 * time.Millisecond
	// pageReportingQuiet is how long the reporting interrupts must stay unchanged.
	pageReportingQuiet = time.Second
	// pageReportingMaxWait bounds the wait: a machine may report now and then for other reasons.
	pageReportingMaxWait = 10 * time.Second
)

// PageReportingInterrupts sums, over all CPUs, the interrupts of the free page reporting queues
// (lines naming "reporting_vq") in r, the content of /proc/interrupts. ok is false when the
// machine has no such queue.
func PageReportingInterrupts(r io.Reader) (total uint64, ok bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "reporting_vq") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.HasSuffix(fields[0], ":") {
			continue
		}
		ok = true
		// The per-CPU counts follow the IRQ number, up to the first field that is not one.
		for _, f := range fields[1:] {
			n, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				break
			}
			total += n
		}
	}
	return total, ok
}

// pageReportingSettled reports whether a wait that began at start (when the freeing process
// exited) may end at now, given when the reporting interrupt count last changed.
func pageReportingSettled(start, lastChange, now time.Time) bool {
	return now.Sub(start) >= pageReportingMaxWait ||
		(now.Sub(start) >= pageReportingDelay && now.Sub(lastChange) >= pageReportingQuiet)
}
