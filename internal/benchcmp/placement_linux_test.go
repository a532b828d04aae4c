package benchcmp

import (
	"runtime"
	"testing"
	"time"
)

func TestCacheLineRoundTrip(t *testing.T) {
	if runtime.NumCPU() < 2 || runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two CPUs to bounce a cache line between")
	}
	start := time.Now()
	rt, err := CacheLineRoundTrip(0, 1, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// A line between two cores comes back in tens to hundreds of nanoseconds; a measurement
	// that counted a time slice (the two threads on one CPU) would take microseconds.
	if rt < 10*time.Nanosecond || rt > 5*time.Microsecond {
		t.Errorf("cache-line round trip %v, want 10 ns to 5 µs", rt)
	}
	if el := time.Since(start); el < 20*time.Millisecond || el > 2*time.Second {
		t.Errorf("a 20-ms measurement took %v", el)
	}
	if _, err := CacheLineRoundTrip(0, runtime.NumCPU()+64, time.Millisecond); err == nil {
		t.Error("a CPU that does not exist: want an error")
	}
}
