package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// netnsDir is where named network namespaces are bind-mounted, as by `ip netns add`.
const netnsDir = "/run/netns"

// threadNetns is the calling thread's own network namespace.
const threadNetns = "/proc/thread-self/ns/net"

// errGoexit reports that fn ended its goroutine (runtime.Goexit, e.g. t.FailNow) instead of
// returning.
var errGoexit = errors.New("function called runtime.Goexit (t.FailNow or t.Skip?) instead of returning")

// panicError carries a panic from the namespace goroutine to the caller, with the stack where
// it happened.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string {
	return fmt.Sprintf("panic in network namespace: %v\n\n%s", p.value, p.stack)
}

// runInNetns runs fn on a new goroutine locked to its OS thread after enter has moved that thread
// into another network namespace, then moves the thread back. If the thread cannot be moved back,
// it stays locked, so the runtime terminates it when the goroutine ends instead of reusing it in
// the wrong namespace. The caller's goroutine and thread are never switched. A panic in fn is
// re-raised in the caller.
func runInNetns(enter func() error, fn func() error) error {
	type result struct {
		err   error
		panic *panicError
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		res := result{err: errGoexit}
		defer func() { done <- res }()

		orig, err := unix.Open(threadNetns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			res.err = fmt.Errorf("open current network namespace: %w", os.NewSyscallError("open", err))
			return
		}
		defer unix.Close(orig)
		if err := enter(); err != nil {
			// enter may have failed after switching; restore anyway.
			if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr == nil {
				runtime.UnlockOSThread()
			}
			res.err = err
			return
		}
		defer func() {
			if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
				// Leave the thread locked: it dies with this goroutine.
				res.err = errors.Join(res.err, fmt.Errorf("restore network namespace: %w", os.NewSyscallError("setns", err)))
				return
			}
			runtime.UnlockOSThread()
		}()
		defer func() {
			if v := recover(); v != nil {
				res.panic = &panicError{value: v, stack: debug.Stack()}
			}
		}()
		err = fn()
		res.err = err
	}()
	res := <-done
	if res.panic != nil {
		panic(res.panic)
	}
	return res.err
}

// setnsTo returns an enter function for runInNetns that joins the namespace open at fd.
func setnsTo(fd int) func() error {
	return func() error {
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter network namespace: %w", os.NewSyscallError("setns", err))
		}
		return nil
	}
}

// unshareNetns is an enter function for runInNetns that moves the thread into a new, empty
// network namespace.
func unshareNetns() error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("create network namespace: %w", os.NewSyscallError("unshare", err))
	}
	return nil
}

// createNamedNetns creates a network namespace and bind-mounts it at /run/netns/name.
func createNamedNetns(name string) error {
	if err := prepareNetnsDir(); err != nil {
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	path := filepath.Join(netnsDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	f.Close()
	err = runInNetns(unshareNetns, func() error {
		if err := unix.Mount(threadNetns, path, "none", unix.MS_BIND, ""); err != nil {
			return os.NewSyscallError("mount", err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("create network namespace %s: %w", name, err)
	}
	return nil
}

// prepareNetnsDir creates /run/netns and makes it a shared mount point, as `ip netns add` does,
// so the namespace mounts below it propagate to (and are removed from) other mount namespaces
// such as those of `ip netns exec`.
func prepareNetnsDir() error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == unix.EINVAL { // not a mount point yet
		if err := unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s on itself: %w", netnsDir, os.NewSyscallError("mount", err))
		}
		err = unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", netnsDir, os.NewSyscallError("mount", err))
	}
	return nil
}

// deleteNamedNetns removes the bind mount of a named network namespace and its file. The
// namespace itself goes away when nothing else holds it. A missing namespace is not an error.
func deleteNamedNetns(name string) error {
	path := filepath.Join(netnsDir, name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("delete network namespace %s: %w", name, os.NewSyscallError("umount", err))
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}

// openNamedNetns opens the named network namespace.
func openNamedNetns(name string) (int, error) {
	fd, err := unix.Open(filepath.Join(netnsDir, name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open network namespace %s: %w", name, os.NewSyscallError("open", err))
	}
	return fd, nil
}
