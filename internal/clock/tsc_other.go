//go:build !amd64

package clock

// haveTSC: no counter readTSC could read here; Fast falls back to the vDSO.
const haveTSC = false

func readTSC() uint64 { panic("clock: readTSC without a TSC") }
