package cpu

// OtherThreadsTimerSlack is the timer slack, in nanoseconds, of every thread
// of the process but the measuring ones while a thread is pinned.
//
// The Go runtime's monitor (sysmon) sleeps 10 ms at a time, in nanosleep,
// while a goroutine runs, and nothing a program calls stops it. With the
// default slack of 50 µs each of its sleeps ends in a timer interrupt of its
// own, about 100 a second; when the process may use no CPU but the measuring
// one (taskset), that interrupt and the switch to the monitor land in the
// middle of whatever probe is in flight. A slack this long lets the kernel
// end the sleep at a timer interrupt that comes anyway, the scheduler tick
// (every 1 to 10 ms, CONFIG_HZ 1000 to 100): the monitor then wakes with the
// tick instead of on its own (measured on a 2-vCPU VM, HZ 250: 252 to 271
// timer interrupts a second on each host's CPU instead of 348 to 369, and a
// UDP spin round trip's pooled p99 3 to 9 % lower; BENCHMARKS.md). It
// still wakes, so TCP spin, where its switches matter more, gained nothing
// measurable. The measuring threads keep the slack they had. Timers of the
// other threads (the runtime's, and time.Sleep or deadlines in goroutines)
// may fire up to this much late while a thread measures; none of them times
// a probe.
const OtherThreadsTimerSlack = 10_000_000
