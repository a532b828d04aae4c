// Package bedtest holds the test helpers around internal/testbed that every package testing over
// two namespaces needs: a testbed per test, skipped without root outside CI and removed at cleanup;
// a test goroutine that runs its whole body inside one side's namespace, so it may call t.Fatal
// there (tb.Do runs its function on another goroutine, where it may not); and the kernel's TCP
// counters of a side.
//
// It is a separate package because internal/testbed is also linked into programs and must not
// import package testing, and internal/testutil cannot import internal/testbed (testbed's own
// tests import testutil).
package bedtest
