package testutil

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// childEnv selects what the test binary does when run as a child by these tests.
const childEnv = "STACKGAP_TESTUTIL_CHILD"

func TestMain(m *testing.M) {
	os.Exit(CheckNoLeaks(m, "sgutil"))
}

// TestChild is a helper, not a test: in a child process started by the tests below it does what
// childEnv says, and they check its output and exit status. Otherwise it returns at once.
func TestChild(t *testing.T) {
	switch os.Getenv(childEnv) {
	case "":
		return // not a child: nothing to do
	case "require-root":
		RequireRoot(t)
	case "require-tool":
		RequireTool(t, "stackgap-no-such-tool")
	case "require-present-tool":
		RequireTool(t, "sh")
	case "clean":
		f, err := os.Open(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	case "leak-fd":
		if _, err := os.Open(os.Args[0]); err != nil {
			t.Fatal(err)
		}
	case "leak-netns":
		name := fmt.Sprintf("sgutil-%d-0a1b2c3d-a", os.Getpid())
		if err := os.WriteFile(filepath.Join(netnsDir, name), nil, 0o444); err != nil {
			t.Fatal(err)
		}
		fmt.Println("created", name)
	default:
		t.Fatalf("unknown child mode %q", os.Getenv(childEnv))
	}
}

type childResult struct {
	exitCode int
	output   string
	pid      int
}

// runChild runs TestChild in a new process of this test binary, as user uid when uid >= 0.
func runChild(t *testing.T, mode, ci string, uid int) childResult {
	t.Helper()
	binary := os.Args[0]
	cmd := exec.Command(binary, "-test.run=^TestChild$", "-test.v")
	if uid >= 0 {
		binary = copyExecutable(t, binary)
		cmd = exec.Command(binary, "-test.run=^TestChild$", "-test.v")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		cmd.Dir = filepath.Dir(binary)
	}
	// atexit_sleep_ms: a race-enabled child would otherwise wait a second before exiting.
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "CI="+ci, "GORACE=atexit_sleep_ms=0")
	out, err := cmd.CombinedOutput()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("run child: %v", err)
	}
	return childResult{exitCode: code, output: string(out), pid: cmd.ProcessState.Pid()}
}

// copyExecutable copies the test binary where any user may run it.
func copyExecutable(t *testing.T, path string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "testutil")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dstPath := filepath.Join(dir, "child.test")
	dst, err := os.OpenFile(dstPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return dstPath
}

func TestRequirePolicy(t *testing.T) {
	const nobody = 65534
	tests := []struct {
		name     string
		mode     string
		ci       string
		uid      int
		wantCode int
		wantOut  []string
	}{
		{"missing tool outside CI skips", "require-tool", "", -1, 0, []string{"--- SKIP: TestChild", `needs "stackgap-no-such-tool" in PATH`, "with CI=true this fails"}},
		{"missing tool in CI fails", "require-tool", "true", -1, 1, []string{"--- FAIL: TestChild", "CI=true: failing instead of skipping"}},
		{"present tool runs", "require-present-tool", "true", -1, 0, []string{"--- PASS: TestChild"}},
		{"not root outside CI skips", "require-root", "", nobody, 0, []string{"--- SKIP: TestChild", "needs root (CAP_NET_ADMIN"}},
		{"not root in CI fails", "require-root", "true", nobody, 1, []string{"--- FAIL: TestChild", "CI=true: failing instead of skipping"}},
		{"root runs", "require-root", "true", -1, 0, []string{"--- PASS: TestChild"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.uid >= 0 || strings.HasPrefix(tt.mode, "require-root") {
				RequireRoot(t) // to run a child as another user, or to see root pass
			}
			got := runChild(t, tt.mode, tt.ci, tt.uid)
			if got.exitCode != tt.wantCode {
				t.Errorf("exit code %d, want %d; output:\n%s", got.exitCode, tt.wantCode, got.output)
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(got.output, want) {
					t.Errorf("output does not contain %q:\n%s", want, got.output)
				}
			}
		})
	}
}

func TestCheckNoLeaks(t *testing.T) {
	tests := []struct {
		mode     string
		wantCode int
		wantOut  string
	}{
		{"clean", 0, "PASS"},
		{"leak-fd", 1, "leak check failed:\n\tfile descriptor"},
		{"leak-netns", 1, "network namespace sgutil-"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			if tt.mode == "leak-netns" {
				RequireRoot(t) // writes under /run/netns
				if err := os.MkdirAll(netnsDir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			got := runChild(t, tt.mode, "", -1)
			if tt.mode == "leak-netns" {
				name := "sgutil-" + strconv.Itoa(got.pid) + "-0a1b2c3d-a"
				if err := os.Remove(filepath.Join(netnsDir, name)); err != nil {
					t.Errorf("remove the child's leaked namespace file: %v", err)
				}
			}
			if got.exitCode != tt.wantCode || !strings.Contains(got.output, tt.wantOut) {
				t.Errorf("exit code %d, want %d, with output containing %q; output:\n%s", got.exitCode, tt.wantCode, tt.wantOut, got.output)
			}
		})
	}
}
