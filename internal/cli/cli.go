// Package cli holds what the two commands share: reading the shared secret,
// parsing addresses, and printing one actionable error line.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ReadSecret reads a shared secret file: its content less trailing newlines.
// An empty file, or one that others may read, is refused.
func ReadSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret file %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) == 0 {
		return nil, fmt.Errorf("secret file %s is empty", path)
	}
	return b, nil
}

// ParseHostPort parses HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address,
// resolving a host name, with defPort when no port is given.
func ParseHostPort(s string, defPort uint16) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, errors.New("empty address")
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, fmt.Errorf("invalid port 0 in %q", s)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a.Unmap(), defPort), nil
	}
	host, port := s, defPort
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return netip.AddrPort{}, fmt.Errorf("invalid port %q in %q", p, s)
		}
		host, port = h, uint16(n)
	}
	addrs, err := net.LookupHost(host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("unknown host %q", host)
	}
	a, err := netip.ParseAddr(addrs[0])
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("unknown host %q", host)
	}
	return netip.AddrPortFrom(a.Unmap(), port), nil
}

// Fatal prints "prog: err" as one line on stderr and exits with code.
func Fatal(prog string, code int, err error) {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	fmt.Fprintf(os.Stderr, "%s: %s\n", prog, msg)
	os.Exit(code)
}

// ParseFlags parses args with fs, a flag.ContinueOnError set. Asked for help
// (-h, --help), it prints fs's flags on stdout and returns flag.ErrHelp. Any
// other mistake comes back as one line that names it and points to -h,
// instead of the flag package's message followed by every flag.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	// The flag package prints the error and calls Usage on every mistake;
	// both are held back here.
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(os.Stdout)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if usage == nil {
			fs.PrintDefaults()
		} else {
			usage()
		}
		return flag.ErrHelp
	}
	return fmt.Errorf("%w ('%s -h' lists the flags)", err, fs.Name())
}
