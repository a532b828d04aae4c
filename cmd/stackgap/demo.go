package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/internal/caps"
	"github.com/stackgap/stackgap/internal/cli"
	"github.com/stackgap/stackgap/internal/testbed"
)

// demoPrefix names the demo's namespaces, so a later demo can sweep what a
// killed one left behind.
const demoPrefix = "sgdemo"

func demoCmd(args []string) error {
	fs := flag.NewFlagSet("stackgap demo", flag.ContinueOnError)
	duration := fs.Duration("duration", 2*time.Second, "measured time per phase")
	size := fs.Int("size", 64, "probe payload size in bytes")
	wait := fs.String("wait", "block", "wait strategy on both hosts: block or spin")
	out := fs.String("out", "", "demo `directory` (default stackgap-results/demo-TIME)")
	if err := cli.ParseFlags(fs, args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	if *duration <= 0 {
		return usageError("invalid duration %v: must be positive", *duration)
	}
	if err := bench.ValidProbeSize(*size); err != nil {
		return usageError("%v", err)
	}
	if *wait != string(bench.WaitBlock) && *wait != string(bench.WaitSpin) {
		return usageError("unknown wait strategy %q (block or spin)", *wait)
	}
	if err := caps.Require("stackgap demo (it creates network namespaces)", caps.SysAdmin, caps.NetAdmin); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	reflectBin := filepath.Join(filepath.Dir(self), "stackgap-reflect")
	if _, err := os.Stat(reflectBin); err != nil {
		if reflectBin, err = exec.LookPath("stackgap-reflect"); err != nil {
			return errors.New("stackgap-reflect not found next to stackgap or in PATH: run 'make build'")
		}
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join("stackgap-results", "demo-"+time.Now().Format("20060102-150405"))
	}
	if err := prepareOutDir(dir); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if removed, err := testbed.Sweep(demoPrefix); err == nil && len(removed) > 0 {
		fmt.Fprintf(os.Stderr, "removed namespaces left by an earlier demo: %s\n", strings.Join(removed, ", "))
	}
	tb, err := testbed.New(testbed.Options{Prefix: demoPrefix})
	if err != nil {
		return fmt.Errorf("build test hosts: %w", err)
	}
	defer tb.Close()
	senderCPU, reflectorCPU := -1, -1
	if runtime.NumCPU() >= 2 {
		senderCPU, reflectorCPU = 0, 1
	}
	fmt.Printf("test hosts: %s (%s, %v, %v) ⇄ %s (%s, %v, %v) over veth; sender on cpu %d, reflector on cpu %d\n",
		tb.NamespaceA, tb.IfaceA, tb.AddrA4, tb.AddrA6, tb.NamespaceB, tb.IfaceB, tb.AddrB4, tb.AddrB6, senderCPU, reflectorCPU)

	refl := exec.Command(reflectBin, "--listen", fmt.Sprintf("[::]:%d", bench.DefaultPort),
		"--cpu", strconv.Itoa(reflectorCPU), "--quiet")
	refl.Stderr = os.Stderr
	stdout, err := refl.StdoutPipe()
	if err != nil {
		return err
	}
	if err := tb.Start(testbed.B, refl); err != nil {
		return fmt.Errorf("start reflector: %w", err)
	}
	defer stopProcess(refl)
	if err := awaitLine(stdout, "listening", 10*time.Second); err != nil {
		return fmt.Errorf("reflector did not start: %w", err)
	}

	for _, fam := range []struct {
		name string
		peer string
	}{{"ipv4", tb.AddrB4.String()}, {"ipv6", "[" + tb.AddrB6.String() + "]"}} {
		if ctx.Err() != nil {
			break
		}
		fmt.Printf("\n== kernel and AF_XDP paths, UDP and TCP over %s ==\n", fam.name)
		run := exec.Command(self, "run", "--peer", fam.peer, "--path", "kernel,xdp", "--transport", "udp,tcp",
			"--duration", duration.String(), "--size", strconv.Itoa(*size), "--wait", *wait,
			"--cpu", strconv.Itoa(senderCPU), "--reflector-cpu", strconv.Itoa(reflectorCPU),
			"--out", filepath.Join(dir, fam.name))
		run.Stdout, run.Stderr = os.Stdout, os.Stderr
		if err := tb.Start(testbed.A, run); err != nil {
			return fmt.Errorf("start sender: %w", err)
		}
		if err := waitOrStop(ctx, run); err != nil {
			if ctx.Err() != nil {
				return exitError{code: 130, err: errors.New("interrupted; test hosts removed")}
			}
			return fmt.Errorf("sender (%s): %w", fam.name, err)
		}
	}
	if ctx.Err() != nil {
		return exitError{code: 130, err: errors.New("interrupted; test hosts removed")}
	}
	fmt.Printf("\ndemo results: %s (stackgap report %s/ipv4)\n", dir, dir)
	return nil
}

// awaitLine reads lines until one contains want, then drains the rest in the background.
func awaitLine(r io.Reader, want string, timeout time.Duration) error {
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if strings.Contains(sc.Text(), want) {
				found <- nil
				io.Copy(io.Discard, r)
				return
			}
		}
		found <- errors.New("it exited before it was ready")
	}()
	select {
	case err := <-found:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("not ready after %v", timeout)
	}
}

// waitOrStop waits for cmd; when ctx ends first it asks cmd to stop with SIGTERM.
func waitOrStop(ctx context.Context, cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			return <-done
		}
	}
}

// stopProcess ends a started daemon: SIGTERM, then SIGKILL after 5 s.
func stopProcess(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}
