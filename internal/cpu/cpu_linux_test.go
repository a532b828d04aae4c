package cpu

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func allowedCPUs(t *testing.T) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	cpus, err := usable(&set)
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) == 0 {
		t.Fatal("no usable cpu")
	}
	return cpus
}

func TestPinEachAllowedCPU(t *testing.T) {
	for _, cpu := range allowedCPUs(t) {
		t.Run(fmt.Sprint(cpu), func(t *testing.T) {
			err := runPinned(cpu, func() error {
				var before unix.CPUSet
				_ = unix.SchedGetaffinity(0, &before)
				runtime.Gosched() // a locked goroutine stays on its thread, which stays on cpu
				if got := Current(); got != cpu || before.Count() != 1 || !before.IsSet(cpu) {
					return fmt.Errorf("pinned to %d: running on %d with mask of %d cpus", cpu, got, before.Count())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPinRestoresMask(t *testing.T) {
	allowed := allowedCPUs(t)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // keep the same thread across Pin and restore
		defer runtime.UnlockOSThread()
		restore, err := Pin(allowed[len(allowed)-1])
		if err != nil {
			done <- err
			return
		}
		restore()
		var set unix.CPUSet
		_ = unix.SchedGetaffinity(0, &set)
		got, _ := usable(&set)
		if !slices.Equal(got, allowed) {
			done <- fmt.Errorf("mask after restore: %v, want %v", got, allowed)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPinRejectsUnavailableCPU(t *testing.T) {
	allowed := allowedCPUs(t)
	want := fmt.Sprintf("(allowed: %s)", formatList(allowed))
	for _, cpu := range []int{allowed[len(allowed)-1] + 1, 1023, 5000} {
		restore, err := Pin(cpu)
		if err == nil {
			restore()
			t.Fatalf("Pin(%d) succeeded", cpu)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("cpu %d not available %s", cpu, want)) {
			t.Errorf("Pin(%d): got %q, want it to name the cpu and %s", cpu, err, want)
		}
		if cerr := Check(cpu); cerr == nil || cerr.Error() != err.Error() {
			t.Errorf("Check(%d) = %v, want Pin's error %q", cpu, cerr, err)
		}
	}
	for _, cpu := range append([]int{-1}, allowed...) {
		if err := Check(cpu); err != nil {
			t.Errorf("Check(%d): %v", cpu, err)
		}
	}
}

func TestPinNegativeOnlyLocks(t *testing.T) {
	before := allowedCPUs(t)
	restore, err := Pin(-1)
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	if after := allowedCPUs(t); !slices.Equal(after, before) {
		t.Errorf("Pin(-1) changed the mask: %v, want %v", after, before)
	}
}

func TestCurrentIsOnline(t *testing.T) {
	if cpu := Current(); !slices.Contains(allowedCPUs(t), cpu) {
		t.Errorf("Current() = %d, not an allowed cpu", cpu)
	}
}

func TestCPUList(t *testing.T) {
	tests := []struct {
		in   string
		cpus []int
		ok   bool
	}{
		{"0", []int{0}, true},
		{"0-1", []int{0, 1}, true},
		{"0-3,5,7-8", []int{0, 1, 2, 3, 5, 7, 8}, true},
		{"", nil, true},
		{"3-1", nil, false},
		{"a", nil, false},
		{"1,", nil, false},
		{"-1", nil, false},
	}
	for _, tt := range tests {
		got, err := parseList(tt.in)
		if (err == nil) != tt.ok || !slices.Equal(got, tt.cpus) {
			t.Errorf("parseList(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.cpus, tt.ok)
		}
		if tt.ok && tt.in != "" {
			if back := formatList(got); back != tt.in {
				t.Errorf("formatList(%v) = %q, want %q", got, back, tt.in)
			}
		}
	}
	if got := formatList(nil); got != "none" {
		t.Errorf("formatList(nil) = %q, want none", got)
	}
}

func TestClaimP(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	var releases []func()
	for range base + 1 {
		releases = append(releases, ClaimP())
	}
	// One P per measuring thread, and never fewer than the process had.
	if got := runtime.GOMAXPROCS(0); got != base+1 {
		t.Fatalf("GOMAXPROCS %d with %d claims, want %d", got, base+1, base+1)
	}
	releases[0]()
	releases[0]() // idempotent
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Fatalf("GOMAXPROCS %d with %d claims, want %d", got, base, base)
	}
	for _, release := range releases[1:] {
		release()
	}
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Fatalf("GOMAXPROCS %d after release, want %d", got, base)
	}
}

// TestYielderLetsOthersRun runs a busy loop that never blocks on one P, as a
// spinning measurement does: other goroutines run only when it yields, and
// it stays on its pinned thread throughout.
func TestYielderLetsOthersRun(t *testing.T) {
	cpu := allowedCPUs(t)[0]
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var ticks atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				ticks.Add(1)
				runtime.Gosched()
			}
		}
	}()
	err := runPinned(cpu, func() error {
		y := NewYielder(time.Millisecond)
		tid := unix.Gettid()
		if !y.Yield(0) || y.Yield(1) {
			return fmt.Errorf("Yield(0) then Yield(1) within the interval: want true, false")
		}
		start := time.Now()
		before := ticks.Load()
		for time.Since(start) < 50*time.Millisecond {
			y.Yield(time.Now().UnixNano())
		}
		var mask unix.CPUSet
		_ = unix.SchedGetaffinity(0, &mask)
		switch {
		case uint64(ticks.Load()-before) < y.Yields()/2:
			// Without the yields, only sysmon's preemption every 10-20 ms
			// would let the other goroutine run.
			return fmt.Errorf("the other goroutine ran %d times during %d yields", ticks.Load()-before, y.Yields())
		case y.Yields() < 10:
			return fmt.Errorf("%d yields in 50 ms at 1 ms intervals", y.Yields())
		case mask.Count() != 1 || !mask.IsSet(cpu):
			return fmt.Errorf("after yields the thread's mask has %d cpus, want only %d", mask.Count(), cpu)
		case y.Moves() == 0 && unix.Gettid() != tid:
			return fmt.Errorf("thread changed from %d to %d without a counted move", tid, unix.Gettid())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runPinned runs fn on a new goroutine pinned to cpu (Pin), restores the
// thread afterwards and returns Pin's or fn's error.
func runPinned(cpu int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		restore, err := Pin(cpu)
		if err != nil {
			done <- err
			return
		}
		defer restore()
		done <- fn()
	}()
	return <-done
}
