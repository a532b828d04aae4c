package xdp

import (
	"errors"
	"fmt"
	"github.com/stackgap/stackgap/internal/clock"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/stackgap/stackgap/bench"
	"github.com/stackgap/stackgap/xdp/frame"
)

// resolveTimeout bounds the neighbour resolution of the sender's next hop.
const resolveTimeout = time.Second

// registry tracks this process's AF_XDP sessions. It is package-level on
// purpose: what it guards is process-wide, not per Path — an interface holds
// one XDP program (the steering program, shared by every session on the
// interface and detached with the last one), an XSKMAP slot holds one socket
// per queue, and the steering program matches flows by port alone — and the
// engine may create several Path values that must see each other's sessions.
// Sessions are keyed by network namespace, so the two ends of a test in two
// namespaces of one process do not collide.
var registry = struct {
	mu     sync.Mutex
	queues map[queueKey]bool
	flows  map[flowKey]bool
	ifaces map[ifaceKey]*sharedSteering
}{
	queues: map[queueKey]bool{},
	flows:  map[flowKey]bool{},
	ifaces: map[ifaceKey]*sharedSteering{},
}

// ifaceKey names one interface of one network namespace.
type ifaceKey struct {
	netnsDev, netnsIno uint64
	ifindex            int
}

// queueKey names one queue of an interface.
type queueKey struct {
	ifaceKey
	queue int
}

// flowKey names one steered flow on an interface.
type flowKey struct {
	ifaceKey
	flow Flow
}

// sharedSteering is the steering program of one interface and how many
// sessions use it.
type sharedSteering struct {
	steer *Steering
	users int
}

// claimQueue reserves an interface queue for one session.
func claimQueue(key queueKey, ifname string) error {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.queues[key] {
		return fmt.Errorf("%w on %s queue %d in this process", ErrSessionBusy, ifname, key.queue)
	}
	registry.queues[key] = true
	return nil
}

func releaseQueue(key queueKey) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	delete(registry.queues, key)
}

// claimFlow reserves a flow on an interface: the steering program matches
// flows by IP version, protocol and port, whatever the address.
func claimFlow(key queueKey, flow Flow, ifname string) error {
	k := flowKey{key.ifaceKey, flow}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.flows[k] {
		return fmt.Errorf("%w on %s for flow %v in this process", ErrSessionBusy, ifname, flow)
	}
	registry.flows[k] = true
	return nil
}

func releaseFlow(key queueKey, flow Flow) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	delete(registry.flows, flowKey{key.ifaceKey, flow})
}

// acquireSteering attaches the steering program to the session's interface,
// or shares the one an earlier live session attached.
func acquireSteering(key queueKey, o SteerOptions) (s *Steering, shared bool, err error) {
	ik := key.ifaceKey
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if st := registry.ifaces[ik]; st != nil {
		st.users++
		return st.steer, true, nil
	}
	s, err = AttachSteering(o)
	if err != nil {
		return nil, false, err
	}
	registry.ifaces[ik] = &sharedSteering{steer: s, users: 1}
	return s, false, nil
}

// releaseSteering detaches the interface's steering program when its last
// session ends.
func releaseSteering(key queueKey) error {
	ik := key.ifaceKey
	registry.mu.Lock()
	defer registry.mu.Unlock()
	st := registry.ifaces[ik]
	if st == nil {
		return nil
	}
	if st.users--; st.users > 0 {
		return nil
	}
	delete(registry.ifaces, ik)
	return st.steer.Close()
}

// currentNetns identifies the calling thread's network namespace.
func currentNetns() (dev, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, 0, fmt.Errorf("identify network namespace: %w", os.NewSyscallError("stat", err))
	}
	return st.Dev, st.Ino, nil
}

// Dial opens the sender's end of a UDP or TCP session towards spec.Remote
// on the interface that holds spec.Local (or, without one, the interface
// and source address the route to the remote uses). A TCP Dial returns once
// the handshake is done, within tcpHandshakeTimeout.
func (p *Path) Dial(spec bench.DialSpec) (bench.Conn, error) {
	c, err := p.dial(spec)
	if err != nil {
		return nil, fmt.Errorf("xdp dial %s %s: %w", orUDP(spec.Transport), spec.Remote, err)
	}
	return c, nil
}

func orUDP(t string) string {
	if t == "" {
		return "udp"
	}
	return t
}

func (p *Path) dial(spec bench.DialSpec) (bench.Conn, error) {
	if err := checkTransport(spec.Transport); err != nil {
		return nil, err
	}
	if err := p.opts.validate(); err != nil {
		return nil, err
	}
	remote := netip.AddrPortFrom(spec.Remote.Addr().Unmap(), spec.Remote.Port())
	if !remote.Addr().IsValid() || remote.Addr().IsUnspecified() || remote.Port() == 0 {
		return nil, fmt.Errorf("remote address %s needs an IP address and a port", spec.Remote)
	}
	local := spec.Local.Unmap()
	var link netlink.Link
	var err error
	if local.IsValid() {
		if local.Is4() != remote.Addr().Is4() {
			return nil, fmt.Errorf("local address %s is not of the remote's family", local)
		}
		if link, err = interfaceWithAddr(local); err != nil {
			return nil, err
		}
	} else if link, local, err = routeSource(remote.Addr()); err != nil {
		return nil, err
	}
	nextHop, err := nextHopOf(remote.Addr(), link)
	if err != nil {
		return nil, err
	}
	peerMAC, err := frame.ResolveMAC(link.Attrs().Index, nextHop, resolveTimeout)
	if err != nil {
		return nil, fmt.Errorf("resolve the MAC address of %s: %w", nextHop, err)
	}
	s, err := openSession(p.opts, link, netip.AddrPortFrom(local, 0), spec.ConnSpec)
	if err != nil {
		return nil, err
	}
	if s.tcp {
		return dialTCP(s, remote, peerMAC)
	}
	c := newUDPConn(s, false)
	copy(c.peerMAC[:], peerMAC)
	c.hdr.Dst, c.hdr.DstPort = remote.Addr(), remote.Port()
	c.remote, c.havePeer = remote, true
	return c, nil
}

// Listen opens the reflector's end of a UDP or TCP session on spec.Local
// (a specific address; port 0 picks a free port) of the interface that
// holds that address. The session is live (steering, socket) when Listen
// returns, so probes (or a TCP SYN) that arrive before Accept wait in the
// socket's RX ring.
func (p *Path) Listen(spec bench.ListenSpec) (bench.Listener, error) {
	l, err := p.listen(spec)
	if err != nil {
		return nil, fmt.Errorf("xdp listen %s %s: %w", orUDP(spec.Transport), spec.Local, err)
	}
	return l, nil
}

func (p *Path) listen(spec bench.ListenSpec) (bench.Listener, error) {
	if err := checkTransport(spec.Transport); err != nil {
		return nil, err
	}
	if err := p.opts.validate(); err != nil {
		return nil, err
	}
	local := netip.AddrPortFrom(spec.Local.Addr().Unmap(), spec.Local.Port())
	if !local.Addr().IsValid() || local.Addr().IsUnspecified() {
		return nil, fmt.Errorf("local address %s: the af_xdp path needs a specific address to find its interface", spec.Local)
	}
	link, err := interfaceWithAddr(local.Addr())
	if err != nil {
		return nil, err
	}
	s, err := openSession(p.opts, link, local, spec.ConnSpec)
	if err != nil {
		return nil, err
	}
	if s.tcp {
		return listenTCP(s)
	}
	return &listener{s: s, conn: newUDPConn(s, true)}, nil
}

// interfaceWithAddr finds the interface that holds addr, in the calling
// thread's network namespace.
func interfaceWithAddr(addr netip.Addr) (netlink.Link, error) {
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(nil, family)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			link, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("look up interface %d holding %s: %w", a.LinkIndex, addr, err)
			}
			return link, nil
		}
	}
	return nil, fmt.Errorf("no interface has address %s", addr)
}

// routeSource returns the interface and source address the kernel would
// use to reach remote.
func routeSource(remote netip.Addr) (netlink.Link, netip.Addr, error) {
	routes, err := netlink.RouteGet(remote.AsSlice())
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("no route to %s: %w", remote, err)
	}
	if len(routes) == 0 {
		return nil, netip.Addr{}, fmt.Errorf("no route to %s", remote)
	}
	src, ok := netip.AddrFromSlice(routes[0].Src)
	if !ok {
		return nil, netip.Addr{}, fmt.Errorf("the route to %s has no source address: give a local address", remote)
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("look up the interface of the route to %s: %w", remote, err)
	}
	return link, src.Unmap(), nil
}

// nextHopOf returns the address whose MAC the frames to remote go to:
// remote itself when it is on-link, else the gateway of its route.
func nextHopOf(remote netip.Addr, link netlink.Link) (netip.Addr, error) {
	routes, err := netlink.RouteGetWithOptions(remote.AsSlice(), &netlink.RouteGetOptions{OifIndex: link.Attrs().Index})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no route to %s on %s: %w", remote, link.Attrs().Name, err)
	}
	if len(routes) == 0 {
		return netip.Addr{}, fmt.Errorf("no route to %s on %s", remote, link.Attrs().Name)
	}
	if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok && !gw.IsUnspecified() {
		return gw.Unmap(), nil
	}
	return remote, nil
}

// session is everything one AF_XDP session holds: the interface queue
// claim, the reserved port, the socket, the steering registration and flow.
// The UDP or TCP Conn drives its socket.
type session struct {
	clock   clock.Wall // the user stamps' clock (CLOCK_REALTIME)
	ifname  string
	ifindex int
	mtu     int
	srcMAC  net.HardwareAddr
	key     queueKey
	local   netip.AddrPort
	flow    Flow
	opts    PathOptions
	spec    bench.ConnSpec
	wait    WaitStrategy
	tcp     bool // the transport is TCP (else UDP)

	claimed     bool // holds the registry's claim on the queue
	flowClaimed bool
	reserveFD   int
	sock        *Socket
	steer       *Steering
	steerOwned  bool // holds a reference to the interface's steering
	shared      bool // the steering program was attached by an earlier session
	registered  bool
	flowAdded   bool
	closed      bool

	taiOffset time.Duration
	info      Info
	frameSize uint64
	txStamp   bool
	txKind    bench.TxStampKind
	hw        *hwClock // NIC hardware stamps → CLOCK_REALTIME; nil when none are asked for
	rxStamps  bool     // read the steering program's RX metadata (off without timestamping)

	// Hot-path state, preallocated.
	rxDescs  [1]Desc
	burst    [burstSize]Desc // ReflectBurst: frames taken off the RX ring
	txBurst  [burstSize]Desc // ReflectBurst: the replies among them
	txDescs  [1]Desc
	comps    [64]Completion
	sendOf   []uint64 // per UMEM frame: the Send index of the frame in flight
	pending  []pendingStamp
	sends    uint64
	counters pathCounters
	hwErr    syscall.Errno

	final      Stats // socket statistics at Close
	finalSteer SteerStats
	steerOK    bool
}

// pendingStamp is a TX stamp drained from the completion ring but not yet
// reported (Send drains the ring when it runs out of frames).
type pendingStamp struct {
	index uint64
	ts    int64
}

// noSendIndex marks a UMEM frame that belongs to no Send.
const noSendIndex = ^uint64(0)

// controlFrame marks a transmitted UMEM frame that belongs to no Send on
// purpose: a TCP segment that completes no probe (handshake, pure ACK, FIN,
// RST, a retransmission, or a probe's leading segments).
const controlFrame = noSendIndex - 1

// openSession opens a session on link for local (port 0: any free port). On
// error it leaves nothing behind.
func openSession(o PathOptions, link netlink.Link, local netip.AddrPort, spec bench.ConnSpec) (_ *session, err error) {
	attrs := link.Attrs()
	s := &session{
		clock:     clock.ForSession(spec.Timestamping),
		ifname:    attrs.Name,
		ifindex:   attrs.Index,
		mtu:       attrs.MTU,
		srcMAC:    attrs.HardwareAddr,
		opts:      o,
		spec:      spec,
		reserveFD: -1,
		tcp:       spec.Transport == "tcp",
	}
	if s.wait, err = waitStrategyOf(spec.Wait); err != nil {
		return nil, err
	}
	if attrs.EncapType != "ether" || len(attrs.HardwareAddr) != 6 {
		return nil, fmt.Errorf("%s is not an Ethernet device (link type %q): the af_xdp path builds Ethernet frames: %w",
			s.ifname, attrs.EncapType, ErrNotSupported)
	}
	if spec.Size != 0 {
		if err := bench.ValidProbeSize(spec.Size); err != nil {
			return nil, err
		}
	}
	sockOpts := Options{
		Interface: s.ifname,
		QueueID:   uint32(o.Queue),
		Mode:      o.Mode,
		NumFrames: o.NumFrames,
		FrameSize: o.FrameSize,
		// The session reads the steering metadata only when it takes stamps.
		RxMetadata: spec.Timestamping,
		ReuseUMEM:  o.ReuseUMEM,
	}
	if spec.BusyPoll > 0 {
		sockOpts.BusyPoll = BusyPoll{Prefer: true, Timeout: spec.BusyPoll}
	}
	sockOpts = sockOpts.withDefaults()
	if f := FillFramesFor(spec.Inflight); f != 0 && f < sockOpts.FillFrames {
		sockOpts.FillFrames = f
	}
	if err := sockOpts.validate(); err != nil {
		return nil, err
	}
	// The capacity Open will report, to refuse a probe size before opening anything.
	if err := checkProbeFits(spec.Size, s.tcp, local.Addr(), s.ifname, s.mtu, sockOpts.FrameSize-packetHeadroom); err != nil {
		return nil, err
	}
	dev, ino, err := currentNetns()
	if err != nil {
		return nil, err
	}
	s.key = queueKey{ifaceKey{netnsDev: dev, netnsIno: ino, ifindex: s.ifindex}, o.Queue}

	defer func() {
		if err != nil {
			err = errors.Join(err, s.close())
		}
	}()
	if err := claimQueue(s.key, s.ifname); err != nil {
		return nil, err
	}
	s.claimed = true
	if s.local, s.reserveFD, err = reservePort(local, s.tcp); err != nil {
		return nil, err
	}
	s.flow = Flow{IPv6: s.local.Addr().Is6(), Proto: syscall.IPPROTO_UDP, DstPort: s.local.Port()}
	if s.tcp {
		s.flow.Proto = syscall.IPPROTO_TCP
	}
	if err := claimFlow(s.key, s.flow, s.ifname); err != nil {
		return nil, err
	}
	s.flowClaimed = true
	if s.taiOffset, err = MeasureTAIOffset(); err != nil {
		return nil, err
	}
	// The socket before the program, as libxdp does: queue and zero-copy
	// errors come before anything is attached to the interface.
	if s.sock, err = Open(sockOpts); err != nil {
		return nil, err
	}
	s.info = s.sock.Info()
	s.frameSize = uint64(s.info.FrameSize)
	// Completion stamps only when the session takes stamps at all: asking
	// costs the kernel a clock read per frame and user space a metadata
	// cache line per send and per completion.
	s.txStamp = s.sock.TxMetadata() && spec.Timestamping
	s.rxStamps = spec.Timestamping
	s.txKind = bench.TxCompletion
	if s.info.Mode == ModeZeroCopy {
		s.txKind = bench.TxHardware
	}
	if o.HardwareRX || (s.txStamp && s.txKind == bench.TxHardware) {
		s.hw = openHWClock(s.ifname)
	}
	s.sendOf = make([]uint64, s.info.NumFrames)
	for i := range s.sendOf {
		s.sendOf[i] = noSendIndex
	}
	s.pending = make([]pendingStamp, 0, s.info.NumFrames)

	s.steer, s.shared, err = acquireSteering(s.key, SteerOptions{Ifindex: s.ifindex, Mode: o.SteerMode, HardwareRX: o.HardwareRX})
	if err != nil {
		return nil, err
	}
	s.steerOwned = true
	if o.DropPercent != 0 {
		if err := s.steer.SetDropPercent(o.DropPercent); err != nil {
			return nil, err
		}
	}
	if err := s.steer.Register(o.Queue, s.sock.FD()); err != nil {
		return nil, err
	}
	s.registered = true
	if err := s.steer.AddFlow(s.flow, FlowOptions{NoMetadata: !s.rxStamps}); err != nil {
		return nil, err
	}
	s.flowAdded = true
	return s, nil
}

// reservePort binds an ordinary UDP (or, with tcp, TCP) socket to local
// (port 0: an ephemeral port) and returns the bound address and the socket.
// Kept open for the session, it stops other applications from taking the
// port; the kernel never sees the steered flow, so it receives nothing. A
// bound TCP socket does not listen: a segment that escapes the steering
// program is answered with RST, as for a closed port.
func reservePort(local netip.AddrPort, tcp bool) (netip.AddrPort, int, error) {
	proto, typ := "udp", unix.SOCK_DGRAM
	if tcp {
		proto, typ = "tcp", unix.SOCK_STREAM
	}
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(local.Port()), Addr: local.Addr().As16()}
	if local.Addr().Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(local.Port()), Addr: local.Addr().As4()}
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return netip.AddrPort{}, -1, fmt.Errorf("reserve %s port: %w", proto, os.NewSyscallError("socket", err))
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return netip.AddrPort{}, -1, fmt.Errorf("reserve %s port %s: already in use: %w", proto, local, os.NewSyscallError("bind", err))
		}
		return netip.AddrPort{}, -1, fmt.Errorf("reserve %s port %s: %w", proto, local, os.NewSyscallError("bind", err))
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return netip.AddrPort{}, -1, fmt.Errorf("reserve %s port %s: %w", proto, local, os.NewSyscallError("getsockname", err))
	}
	var port int
	switch b := bound.(type) {
	case *unix.SockaddrInet4:
		port = b.Port
	case *unix.SockaddrInet6:
		port = b.Port
	}
	return netip.AddrPortFrom(local.Addr(), uint16(port)), fd, nil
}

// transport is "tcp" or "udp".
func (s *session) transport() string {
	if s.tcp {
		return "tcp"
	}
	return "udp"
}

// close undoes what openSession did, in reverse: unregister the socket,
// remove the flow, detach the program (with the interface's last session),
// close the socket, release the port and the queue claim. It keeps the
// socket's and the program's last counters for Counters. Idempotent.
func (s *session) close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.steer != nil && s.registered {
		if st, err := s.steer.Stats(); err == nil {
			s.finalSteer, s.steerOK = st, true
		}
		if err := s.steer.Unregister(s.opts.Queue); err != nil {
			errs = append(errs, err)
		}
	}
	if s.steer != nil && s.flowAdded {
		if err := s.steer.RemoveFlow(s.flow); err != nil {
			errs = append(errs, err)
		}
	}
	if s.steerOwned {
		if err := releaseSteering(s.key); err != nil {
			errs = append(errs, err)
		}
	}
	if s.sock != nil {
		if st, err := s.sock.Stats(); err == nil {
			s.final = st
		}
		if err := s.sock.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.hw.close(); err != nil {
		errs = append(errs, fmt.Errorf("close PTP clock: %w", err))
	}
	if s.reserveFD >= 0 {
		if err := unix.Close(s.reserveFD); err != nil {
			errs = append(errs, fmt.Errorf("release %s port %s: %w", s.transport(), s.local, os.NewSyscallError("close", err)))
		}
		s.reserveFD = -1
	}
	if s.flowClaimed {
		releaseFlow(s.key, s.flow)
	}
	if s.claimed {
		releaseQueue(s.key)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close af_xdp session on %s queue %d: %w", s.ifname, s.opts.Queue, err)
	}
	return nil
}

// Counters returns the session's counters, the socket's XDP_STATISTICS and
// the steering program's counters (bench.Reporter). The steering counters
// count every frame the interface's program saw since it was attached.
func (s *session) Counters() map[string]uint64 {
	stats, steer, steerOK := s.final, s.finalSteer, s.steerOK
	if !s.closed {
		if st, err := s.sock.Stats(); err == nil {
			stats = st
		}
		if st, err := s.steer.Stats(); err == nil {
			steer, steerOK = st, true
		}
	}
	return counterMap(s.counters, stats, steer, steerOK)
}

// Notes describes the socket mode, busy polling, the timestamp sources and
// the steering program (bench.Reporter).
func (s *session) Notes() []string {
	n := sessionNotes{
		info:          s.info,
		steerMode:     s.steer.Mode(),
		steerFallback: s.steer.Fallback(),
		steerShared:   s.shared,
		hardwareRX:    s.steer.HardwareRX(),
		hardwareAsked: s.opts.HardwareRX,
		busyPollAsked: s.spec.BusyPoll > 0,
		dropPercent:   s.opts.DropPercent,
		counters:      s.counters,
		hardwareClock: s.hw.note(),
		noTimestamps:  !s.rxStamps,
	}
	if s.hwErr != 0 {
		n.lastHardwareErr = s.hwErr
	}
	if !s.closed {
		// Another session on the interface may have set it.
		if p, err := s.steer.DropPercent(); err == nil {
			n.dropPercent = p
		}
	}
	return n.lines()
}

// listener is the reflector's end of one UDP session (bench.Listener).
type listener struct {
	mu       sync.Mutex
	s        *session
	conn     *udpConn
	accepted bool
	closed   bool
}

// Port is the session's UDP port.
func (l *listener) Port() uint16 { return l.s.local.Port() }

// Accept returns the session's Conn at once; a session has one socket, so
// a second Accept fails. The Conn then owns the session.
func (l *listener) Accept(time.Time) (bench.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return nil, errors.New("xdp accept: listener closed")
	case l.accepted:
		return nil, errors.New("xdp accept: the session's conn was already accepted (one af_xdp socket per session)")
	}
	l.accepted = true
	return l.conn, nil
}

// Close ends the session unless its Conn was accepted (then closing the
// Conn ends it).
func (l *listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.accepted {
		return nil
	}
	return l.s.close()
}

// newUDPConn makes the UDP Conn of a session. A reflector's Conn has no
// peer until a probe arrives.
func newUDPConn(s *session, reflector bool) *udpConn {
	c := &udpConn{s: s, reflector: reflector}
	copy(c.srcMAC[:], s.srcMAC)
	c.hdr = frame.Header{
		SrcMAC:  c.srcMAC[:],
		DstMAC:  c.peerMAC[:],
		Src:     s.local.Addr(),
		SrcPort: s.local.Port(),
	}
	// Linux sends DF datagrams with an ID counter seeded randomly: per
	// socket when connected, per destination hash bucket otherwise (an
	// unconnected reflector's replies, on 6.18, are not ID 0 either).
	c.hdr.IPv4ID = uint16(rand.Uint32())
	if s.local.Addr().Is6() {
		// Linux labels IPv6 flows with a hash of the flow (auto_flowlabels):
		// a nonzero value that stays the same for the session.
		c.hdr.FlowLabel = 1 + rand.Uint32N(0xfffff)
	}
	return c
}
