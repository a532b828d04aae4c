// Command stackgap-reflect is the reflector daemon: it answers the probes of
// the sessions that stackgap senders open over its control port.
//
//	stackgap-reflect [--listen ADDR:PORT] [--secret-file F] [--cpu N]
//	                 [--max-sessions N] [--max-duration D] [--idle-timeout D]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/internal/cli"
	"github.com/stackgap/stackgap/internal/cpu"
	"github.com/stackgap/stackgap/internal/paths"
	"github.com/stackgap/stackgap/internal/version"
	"github.com/stackgap/stackgap/results"
	"github.com/stackgap/stackgap/xdp"
)

const prog = "stackgap-reflect"

func main() {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	listen := fs.String("listen", fmt.Sprintf("[::]:%d", bench.DefaultPort), "control `address:port` to listen on (TCP); probe ports are chosen per session")
	secretFile := fs.String("secret-file", "", "`file` holding a shared secret every sender must prove (mode 0600)")
	cpuID := fs.Int("cpu", -1, "pin session threads to this `cpu` unless the sender asks for another (-1: no pinning)")
	maxSessions := fs.Int("max-sessions", 16, "sessions live at once")
	maxDuration := fs.Duration("max-duration", 10*time.Minute, "longest session a sender may request")
	idle := fs.Duration("idle-timeout", 10*time.Second, "end a session (or control connection) silent for this long")
	quiet := fs.Bool("quiet", false, "log only errors")
	showVersion := fs.Bool("version", false, "print the version and exit")
	var xf paths.XDPFlags
	xf.Register(fs)
	if err := cli.ParseFlags(fs, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		cli.Fatal(prog, 2, err)
	}
	if *showVersion {
		fmt.Println(prog, version.String())
		return
	}
	if fs.NArg() > 0 {
		cli.Fatal(prog, 2, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	addr, err := cli.ParseHostPort(*listen, bench.DefaultPort)
	if err != nil {
		cli.Fatal(prog, 2, fmt.Errorf("--listen: %w", err))
	}
	xdpOpts, err := xf.Options()
	if err != nil {
		cli.Fatal(prog, 2, err)
	}
	// Sessions come and go: each AF_XDP session takes the UMEM memory the
	// last one left rather than mapping its own (see xdp.Options.ReuseUMEM).
	xdpOpts.ReuseUMEM = true
	if err := cpu.Check(*cpuID); err != nil {
		cli.Fatal(prog, 2, fmt.Errorf("--cpu: %w", err))
	}
	secret, err := cli.ReadSecret(*secretFile)
	if err != nil {
		cli.Fatal(prog, 2, err)
	}
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelError
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	r, err := bench.NewReflector(bench.ReflectorOptions{
		Paths: paths.Available(xdpOpts), Secret: secret, MaxSessions: *maxSessions, MaxDuration: *maxDuration,
		IdleTimeout: *idle, CPU: *cpuID, Build: version.String(), Log: log,
		Environment: hostEnvironment,
	})
	if err != nil {
		cli.Fatal(prog, 2, err)
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		cli.Fatal(prog, 1, fmt.Errorf("listen on %v: %w", addr, err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	auth := "no shared secret"
	if secret != nil {
		auth = "shared secret required"
	}
	// The first stdout line tells scripts (and stackgap demo) the reflector is ready.
	fmt.Printf("%s %s listening on %v (%s)\n", prog, version.String(), ln.Addr(), auth)
	err = r.Serve(ctx, ln)
	if rerr := xdp.ReleaseUMEMs(); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil {
		cli.Fatal(prog, 1, err)
	}
}

// hostEnvironment describes this host and the interface that owns local.
func hostEnvironment(local netip.Addr) *results.Environment {
	env, err := results.CollectEnvironment(paths.InterfaceOf(local))
	if err != nil {
		env.Notes = append(env.Notes, err.Error())
	}
	return &env
}
