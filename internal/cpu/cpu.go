// Package cpu places the calling goroutine's OS thread on a CPU and reports
// where a thread runs, so a measurement loop stays on one core and its results
// can say which.
package cpu
