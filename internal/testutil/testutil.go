// Package testutil holds the test policy shared by stackgap's packages: when a test that needs
// privileges or an external tool may skip, and the leak checks that every privileged package runs
// in its TestMain.
//
// Policy: outside CI a test that cannot run here skips with the reason; when the environment
// variable CI is "true" such a test fails instead, so a CI run never hides a regression behind a
// skip.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// InCI reports whether the tests run in CI, where tests must not skip for missing privileges or
// tools.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireRoot skips the test when the process is not root, or fails it when running in CI.
func RequireRoot(t testing.TB) {
	t.Helper()
	if uid := os.Geteuid(); uid != 0 {
		require(t, fmt.Sprintf("needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN, CAP_BPF), runs as uid %d", uid))
	}
}

// RequireTool skips the test when the executable name is not in PATH, or fails it when running in
// CI.
func RequireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		require(t, fmt.Sprintf("needs %q in PATH: %v", name, err))
	}
}

// require skips or, in CI, fails the test because of what it lacks.
func require(t testing.TB, lack string) {
	t.Helper()
	if InCI() {
		t.Fatal(lack + "; CI=true: failing instead of skipping")
	}
	t.Skip(lack + "; skipping (with CI=true this fails)")
}

// netnsDir is where named network namespaces are bind-mounted (as by `ip netns add`).
const netnsDir = "/run/netns"

// CheckNoLeaks runs the tests of m and then checks that they left nothing behind: no named network
// namespace "<prefix>-<pid>-…" of this process (the naming used by internal/testbed) and no file
// descriptor that was not open before the tests, except the Go runtime's own poller descriptors.
// It prints what leaked to stderr and returns the exit code for os.Exit: m.Run's code, or 1 when
// the tests passed but something leaked. Use it in TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testutil.CheckNoLeaks(m, "sg")) }
func CheckNoLeaks(m *testing.M, prefix string) int {
	warmUpRuntimeFDs()
	before, err := openFDs()
	if err != nil {
		fmt.Fprintf(os.Stderr, "leak check: %v\n", err)
		return 1
	}
	code := m.Run()

	var leaks []string
	after, err := openFDs()
	if err != nil {
		leaks = append(leaks, err.Error())
	}
	for fd, target := range after {
		if old, ok := before[fd]; ok && old == target {
			continue
		}
		if isRuntimeFD(target) {
			continue
		}
		leaks = append(leaks, fmt.Sprintf("file descriptor %d -> %s opened by the tests is still open", fd, target))
	}
	names, err := OwnNamespaces(prefix)
	if err != nil {
		leaks = append(leaks, err.Error())
	}
	for _, name := range names {
		leaks = append(leaks, fmt.Sprintf("network namespace %s (%s) is left", name, filepath.Join(netnsDir, name)))
	}
	if len(leaks) == 0 {
		return code
	}
	slices.Sort(leaks)
	fmt.Fprintf(os.Stderr, "leak check failed:\n\t%s\n", strings.Join(leaks, "\n\t"))
	if code == 0 {
		code = 1
	}
	return code
}

// OwnNamespaces returns the named network namespaces "<prefix>-<pid>-…" of this process.
func OwnNamespaces(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	own := prefix + "-" + strconv.Itoa(os.Getpid()) + "-"
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), own) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// warmUpRuntimeFDs makes the runtime open the descriptors it keeps for the rest of the process
// (the network poller's epoll and eventfd), so they are in the "before" set.
func warmUpRuntimeFDs() {
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	r.Close()
	w.Close()
}

// isRuntimeFD reports whether a descriptor's link target is one the Go runtime opens lazily and
// keeps for the life of the process.
func isRuntimeFD(target string) bool {
	switch target {
	case "anon_inode:[eventpoll]", "anon_inode:[eventfd]":
		return true
	}
	return false
}

// openFDs maps this process's open file descriptors to their /proc link targets.
func openFDs() (map[int]string, error) {
	const dir = "/proc/self/fd"
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("list open file descriptors: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list open file descriptors: %w", err)
	}
	fds := make(map[int]string, len(names))
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == int(d.Fd()) {
			continue
		}
		target, err := os.Readlink(filepath.Join(dir, name))
		if err != nil {
			continue // closed since the listing
		}
		fds[fd] = target
	}
	return fds, nil
}
