package benchcmp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testdata/proc-interrupts.txt is /proc/interrupts of the 2-CPU test VM (Linux 6.18), whose
// virtio-balloon has a free page reporting queue.

func TestPageReportingInterrupts(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "proc-interrupts.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, ok := PageReportingInterrupts(f)
	if !ok || total != 4573 {
		t.Errorf("PageReportingInterrupts = %d, %v; want 4573, true", total, ok)
	}

	for _, c := range []struct {
		name, text string
		total      uint64
		ok         bool
	}{
		{"no queue", "           CPU0       CPU1\n  0:         47          0   IO-APIC    2-edge      timer\n", 0, false},
		{"two queues, four CPUs", "           CPU0 CPU1 CPU2 CPU3\n" +
			" 32:  1 2 3 4  PCI-MSIX-0000:00:01.0   4-edge      virtio0-reporting_vq\n" +
			" 40:  0 0 0 10  PCI-MSIX-0000:00:09.0   4-edge      virtio7-reporting_vq\n", 20, true},
		{"counts end at the first word", " 32:  5 7 PCI-MSIX 12 4-edge virtio0-reporting_vq\n", 12, true},
		{"not an IRQ line", "  reporting_vq 5\n", 0, false},
	} {
		total, ok := PageReportingInterrupts(strings.NewReader(c.text))
		if total != c.total || ok != c.ok {
			t.Errorf("%s: PageReportingInterrupts = %d, %v; want %d, %v", c.name, total, ok, c.total, c.ok)
		}
	}
}

func TestPageReportingSettled(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	for _, c := range []struct {
		name            string
		lastChange, now time.Duration // after start
		want            bool
	}{
		{"too early, quiet since the exit", 0, 2 * time.Second, false},
		{"after the delay, quiet since the exit", 0, pageReportingDelay, true},
		{"after the delay, reported just now", 2400 * time.Millisecond, 2500 * time.Millisecond, false},
		{"reporting over for a second", 3 * time.Second, 4 * time.Second, true},
		{"still reporting at the limit", 9900 * time.Millisecond, pageReportingMaxWait, true},
	} {
		if got := pageReportingSettled(start, at(c.lastChange), at(c.now)); got != c.want {
			t.Errorf("%s: pageReportingSettled = %v, want %v", c.name, got, c.want)
		}
	}
}
