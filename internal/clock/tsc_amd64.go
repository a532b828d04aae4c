package clock

// haveTSC: this architecture has a time stamp counter readTSC can read.
const haveTSC = true

// readTSC returns the CPU's time stamp counter (RDTSC, not serializing, as
// sockperf reads it).
//
//go:noescape
func readTSC() uint64
