package xdp

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/stackgap/stackgap/bpf"
)

// Steering is the steering program (bpf/steer.c) loaded and attached to one
// interface through a bpf_link, so it detaches when Close is called or the
// process dies. Its methods may be called from several goroutines, Close
// included.
type Steering struct {
	ifname     string
	mode       string
	fallback   string
	hardwareRX bool

	mu      sync.Mutex
	link    link.Link
	program *ebpf.Program
	maps    bpf.SteerMaps
}

// XDPProgramAttachedError is returned by AttachSteering when the interface
// already has an XDP program. stackgap never detaches another program.
type XDPProgramAttachedError struct {
	Interface string
	// ID and Name identify the attached program; ID is 0 when programs are
	// attached in several modes at once and the kernel reports no single one.
	ID   uint32
	Name string
}

func (e *XDPProgramAttachedError) Error() string {
	if e.ID == 0 {
		return fmt.Sprintf("%s already has XDP programs attached in several modes; stackgap never detaches another program", e.Interface)
	}
	return fmt.Sprintf("%s already has XDP program id %d (name %s) attached; stackgap never detaches another program", e.Interface, e.ID, e.Name)
}

// AttachSteering loads the steering program and attaches it to o.Ifindex.
// It refuses an interface that already has an XDP program. On error nothing
// stays loaded or attached.
func AttachSteering(o SteerOptions) (*Steering, error) {
	mode := o.Mode
	if mode == "" {
		mode = SteerModeAuto
	}
	switch {
	case o.Ifindex <= 0:
		return nil, fmt.Errorf("attach steering: invalid interface index: %d", o.Ifindex)
	case mode != SteerModeAuto && mode != SteerModeDriver && mode != SteerModeGeneric:
		return nil, fmt.Errorf("attach steering: invalid mode %q (want %q, %q or %q)", o.Mode, SteerModeAuto, SteerModeDriver, SteerModeGeneric)
	case o.HardwareRX && mode == SteerModeGeneric:
		return nil, errors.New("attach steering: hardware RX timestamps need driver mode: metadata kfuncs cannot run in generic mode")
	}
	nl, err := netlink.LinkByIndex(o.Ifindex)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) || errors.Is(err, unix.ENODEV) {
			return nil, fmt.Errorf("attach steering: unknown interface index %d", o.Ifindex)
		}
		return nil, fmt.Errorf("attach steering: look up interface index %d: %w", o.Ifindex, err)
	}
	ifname := nl.Attrs().Name
	if err := refuseAttachedXDP(ifname, nl.Attrs().Xdp); err != nil {
		return nil, err
	}

	if mode == SteerModeGeneric {
		return attachSteering(o.Ifindex, ifname, SteerModeGeneric, false)
	}
	s, err := attachSteering(o.Ifindex, ifname, SteerModeDriver, o.HardwareRX)
	if err == nil || mode == SteerModeDriver {
		return s, err
	}
	if attached := (*XDPProgramAttachedError)(nil); errors.As(err, &attached) {
		return nil, err
	}
	s, genericErr := attachSteering(o.Ifindex, ifname, SteerModeGeneric, false)
	if genericErr != nil {
		return nil, fmt.Errorf("%w (after driver mode failed: %v)", genericErr, err)
	}
	s.fallback = err.Error()
	if o.HardwareRX {
		s.fallback += "; hardware RX timestamps are unavailable in generic mode"
	}
	return s, nil
}

// attachSteering loads one program variant and attaches it in one mode.
func attachSteering(ifindex int, ifname, mode string, hardwareRX bool) (*Steering, error) {
	program, maps, err := loadSteering(ifindex, hardwareRX)
	if err != nil {
		if hardwareRX && errors.Is(err, unix.EOPNOTSUPP) {
			return nil, fmt.Errorf("attach steering: %s does not support XDP in driver mode (device-bound program for hardware RX timestamps): %w", ifname, err)
		}
		return nil, fmt.Errorf("attach steering to %s in %s mode: %w", ifname, mode, err)
	}
	flags := link.XDPDriverMode
	if mode == SteerModeGeneric {
		flags = link.XDPGenericMode
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: program, Interface: ifindex, Flags: flags})
	if err != nil {
		program.Close()
		maps.Close()
		switch {
		case errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST):
			if nl, lerr := netlink.LinkByIndex(ifindex); lerr == nil {
				if aerr := refuseAttachedXDP(ifname, nl.Attrs().Xdp); aerr != nil {
					return nil, aerr
				}
			}
		case errors.Is(err, unix.EOPNOTSUPP):
			return nil, fmt.Errorf("attach steering: %s does not support XDP in %s mode: %w", ifname, mode, err)
		}
		return nil, fmt.Errorf("attach steering to %s in %s mode: %w", ifname, mode, err)
	}
	return &Steering{ifname: ifname, mode: mode, hardwareRX: hardwareRX, link: l, program: program, maps: maps}, nil
}

// loadSteering loads the maps and one program variant: steer_hw bound to
// ifindex when hardwareRX, else steer.
func loadSteering(ifindex int, hardwareRX bool) (*ebpf.Program, bpf.SteerMaps, error) {
	spec, err := bpf.LoadSteer()
	if err != nil {
		return nil, bpf.SteerMaps{}, fmt.Errorf("load steering program spec: %w", err)
	}
	var specs bpf.SteerSpecs
	if err := spec.Assign(&specs); err != nil {
		return nil, bpf.SteerMaps{}, fmt.Errorf("load steering program spec: %w", err)
	}
	variant := bpf.SteerProgSteer
	if hardwareRX {
		variant = bpf.SteerProgSteerHw
		// metadata kfuncs need a program bound to its device (kernel 6.3+)
		specs.SteerHw.Ifindex = uint32(ifindex)
		specs.SteerHw.Flags |= unix.BPF_F_XDP_DEV_BOUND_ONLY
	}
	for name := range spec.Programs {
		if name != variant {
			delete(spec.Programs, name)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, bpf.SteerMaps{}, fmt.Errorf("load steering program %s: %w", variant, err)
	}
	defer coll.Close()
	var maps bpf.SteerMaps
	if err := coll.Assign(&maps); err != nil {
		return nil, bpf.SteerMaps{}, fmt.Errorf("load steering maps: %w", err)
	}
	return coll.DetachProgram(variant), maps, nil
}

// refuseAttachedXDP returns an XDPProgramAttachedError if attrs show an XDP
// program on the interface.
func refuseAttachedXDP(ifname string, attrs *netlink.LinkXdp) error {
	if attrs == nil || (!attrs.Attached && attrs.ProgId == 0) {
		return nil
	}
	e := &XDPProgramAttachedError{Interface: ifname, ID: attrs.ProgId, Name: "unknown"}
	if e.ID != 0 {
		if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(e.ID)); err == nil {
			if info, err := p.Info(); err == nil {
				e.Name = info.Name
			}
			p.Close()
		}
	}
	return e
}

// Mode returns SteerModeDriver or SteerModeGeneric.
func (s *Steering) Mode() string { return s.mode }

// Fallback says why SteerModeAuto did not attach in driver mode, "" when it
// did or another mode was asked for.
func (s *Steering) Fallback() string { return s.fallback }

// HardwareRX reports whether the device-bound variant that reads NIC RX
// timestamps is attached.
func (s *Steering) HardwareRX() bool { return s.hardwareRX }

// ProgramID returns the kernel's id of the attached program, as netlink and
// bpftool show it.
func (s *Steering) ProgramID() (ebpf.ProgramID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.program == nil {
		return 0, errSteeringClosed
	}
	info, err := s.program.Info()
	if err != nil {
		return 0, fmt.Errorf("steering program info: %w", err)
	}
	id, ok := info.ID()
	if !ok {
		return 0, errors.New("steering program info: kernel reports no program id")
	}
	return id, nil
}

var errSteeringClosed = errors.New("steering is closed")

// AddFlow makes the program redirect f's packets, with metadata in front of
// each unless o says not to. Adding a live flow again is not an error: it
// takes o.
func (s *Steering) AddFlow(f Flow, o FlowOptions) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("add steering flow: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.program == nil {
		return fmt.Errorf("add steering flow %v: %w", f, errSteeringClosed)
	}
	flags := bpf.SteerFlowFlagsFLOW_LIVE | bpf.SteerFlowFlagsFLOW_METADATA
	if o.NoMetadata {
		flags = bpf.SteerFlowFlagsFLOW_LIVE
	}
	if err := s.setFlowFlags(f, uint64(flags)); err != nil {
		return fmt.Errorf("add steering flow %v: %w", f, err)
	}
	return nil
}

// setFlowFlags writes f's flags into its word of the flows map, keeping the
// other flows' bits. The caller holds s.mu, so no other update of the word
// can interleave; the program reads the word with one load.
func (s *Steering) setFlowFlags(f Flow, flags uint64) error {
	word, shift := f.slot()
	var bits uint64
	if err := s.maps.Flows.Lookup(word, &bits); err != nil {
		return err
	}
	bits = bits&^(flowMask<<shift) | flags<<shift
	return s.maps.Flows.Put(word, bits)
}

// RemoveFlow stops redirecting f's packets. Removing a flow that is not live
// is not an error.
func (s *Steering) RemoveFlow(f Flow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.program == nil {
		return fmt.Errorf("remove steering flow %v: %w", f, errSteeringClosed)
	}
	if err := s.setFlowFlags(f, 0); err != nil {
		return fmt.Errorf("remove steering flow %v: %w", f, err)
	}
	return nil
}

// Register puts the AF_XDP socket xskFD, bound to RX queue queue of the
// interface, into the program's XSKMAP. Register it after bind(2): the
// program redirects a queue's probe frames only to a socket bound to that
// queue (others drop them).
func (s *Steering) Register(queue int, xskFD int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.program == nil {
		return fmt.Errorf("register af_xdp socket for queue %d: %w", queue, errSteeringClosed)
	}
	if max := int(s.maps.Xsks.MaxEntries()); queue < 0 || queue >= max {
		return fmt.Errorf("register af_xdp socket: queue %d out of range [0, %d)", queue, max)
	}
	if xskFD < 0 {
		return fmt.Errorf("register af_xdp socket for queue %d: invalid fd %d", queue, xskFD)
	}
	if err := s.maps.Xsks.Put(uint32(queue), uint32(xskFD)); err != nil {
		return fmt.Errorf("register af_xdp socket fd %d for queue %d: %w", xskFD, queue, err)
	}
	return nil
}

// Unregister removes the socket registered for queue; that queue's probe
// frames go to the kernel again. An empty slot is not an error.
func (s *Steering) Unregister(queue int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.program == nil {
		return fmt.Errorf("unregister af_xdp socket for queue %d: %w", queue, errSteeringClosed)
	}
	if max := int(s.maps.Xsks.MaxEntries()); queue < 0 || queue >= max {
		return fmt.Errorf("unregister af_xdp socket: queue %d out of range [0, %d)", queue, max)
	}
	if err := s.maps.Xsks.Delete(uint32(queue)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("unregister af_xdp socket for queue %d: %w", queue, err)
	}
	return nil
}

// SetDropPercent makes the program drop p percent (0 to 100; 0 turns it
// off) of the frames of live probe flows, chosen at random
// (bpf_get_prandom_u32), before they are redirected; SteerStats.Dropped
// counts them. It emulates loss where nftables cannot: XDP runs before
// netfilter, and AF_XDP transmission skips it. Other traffic is never
// dropped.
func (s *Steering) SetDropPercent(p int) error {
	if err := validDropPercent(p); err != nil {
		return fmt.Errorf("set steering drop share: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.program == nil {
		return fmt.Errorf("set steering drop share: %w", errSteeringClosed)
	}
	if err := s.maps.Config.Put(uint32(0), bpf.SteerSettings{DropPct: uint32(p)}); err != nil {
		return fmt.Errorf("set steering drop share to %d%%: %w", p, err)
	}
	return nil
}

// DropPercent returns the share of live probe-flow frames the program drops.
func (s *Steering) DropPercent() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.program == nil {
		return 0, fmt.Errorf("read steering drop share: %w", errSteeringClosed)
	}
	var set bpf.SteerSettings
	if err := s.maps.Config.Lookup(uint32(0), &set); err != nil {
		return 0, fmt.Errorf("read steering drop share: %w", err)
	}
	return int(set.DropPct), nil
}

// Stats returns the program's counters summed over all CPUs.
func (s *Steering) Stats() (SteerStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.program == nil {
		return SteerStats{}, fmt.Errorf("read steering stats: %w", errSteeringClosed)
	}
	var perCPU []bpf.SteerStats
	if err := s.maps.Counters.Lookup(uint32(0), &perCPU); err != nil {
		return SteerStats{}, fmt.Errorf("read steering stats: %w", err)
	}
	var sum SteerStats
	for _, c := range perCPU {
		sum.Redirected += c.Redirected
		sum.Passed += c.Passed
		sum.NoSocket += c.NoSocket
		sum.NotProbe += c.NotProbe
		sum.MetaFailed += c.MetaFailed
		sum.Dropped += c.Dropped
	}
	if ps, err := s.program.Stats(); err == nil {
		sum.Runs, sum.RunTime = ps.RunCount, ps.Runtime
	}
	return sum, nil
}

// Close detaches the program and releases it and its maps. Closing twice is
// not an error.
func (s *Steering) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.program == nil {
		return nil
	}
	var errs []error
	if err := s.link.Close(); err != nil {
		errs = append(errs, fmt.Errorf("detach steering program from %s: %w", s.ifname, err))
	}
	if err := s.program.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close steering program: %w", err))
	}
	if err := s.maps.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close steering maps: %w", err))
	}
	s.link, s.program, s.maps = nil, nil, bpf.SteerMaps{}
	return errors.Join(errs...)
}
