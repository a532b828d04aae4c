// Package cpu places the calling goroutine's OS thread on a CPU, keeps the
// process's other threads off that CPU while it measures, and reports where a
// thread runs, so a measurement loop stays on one core, has it to itself as
// far as the process goes, and its results can say which.
package cpu
