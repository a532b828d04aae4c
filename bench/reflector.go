package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stackgap/stackgap/internal/clock"
	"github.com/stackgap/stackgap/internal/cpu"
	"github.com/stackgap/stackgap/internal/nogc"
	"github.com/stackgap/stackgap/results"
)

// ReflectorOptions configures a reflector. Zero values take the defaults.
type ReflectorOptions struct {
	// Paths are the paths the reflector serves, by name (required).
	Paths map[string]Path
	// Secret, when set, must be proven by every sender (optional).
	Secret []byte
	// MaxSessions bounds the sessions live at once (optional, default 16).
	MaxSessions int
	// MaxDuration bounds one session's requested duration (optional, default 10 minutes).
	MaxDuration time.Duration
	// IdleTimeout ends a session that received no valid probe for this long,
	// and a control connection that sent nothing for this long (optional, default 10 s).
	IdleTimeout time.Duration
	// CPU pins session threads unless the sender asks for another CPU (optional, -1: none).
	CPU int
	// Build names the software build in the hello message (optional).
	Build string
	// Environment describes the host for the interface that owns local (optional).
	Environment func(local netip.Addr) *results.Environment
	// Log receives one line per control connection and session (optional).
	Log *slog.Logger
}

const (
	defaultMaxSessions = 16
	defaultMaxDuration = 10 * time.Minute
	defaultIdleTimeout = 10 * time.Second
	// sessionGrace is how long a session may outlive its requested duration:
	// warm-up and the drain of the last probes happen inside it.
	sessionGrace  = 30 * time.Second
	acceptTimeout = 10 * time.Second
	pollSlice     = 50 * time.Millisecond
)

// Reflector answers the probes of live sessions. One Reflector serves any
// number of control connections; each session runs on its own locked thread.
type Reflector struct {
	o    ReflectorOptions
	log  *slog.Logger
	mu   sync.Mutex
	live map[uint32]*reflectSession // by token
	wg   sync.WaitGroup
}

// NewReflector validates the options and returns a reflector.
func NewReflector(o ReflectorOptions) (*Reflector, error) {
	if len(o.Paths) == 0 {
		return nil, errors.New("reflector: no paths configured")
	}
	if o.MaxSessions == 0 {
		o.MaxSessions = defaultMaxSessions
	}
	if o.MaxDuration == 0 {
		o.MaxDuration = defaultMaxDuration
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = defaultIdleTimeout
	}
	switch {
	case o.MaxSessions < 0:
		return nil, fmt.Errorf("invalid max sessions %d: must be positive", o.MaxSessions)
	case o.MaxDuration < 0:
		return nil, fmt.Errorf("invalid max session duration %v: must be positive", o.MaxDuration)
	case o.IdleTimeout < 0:
		return nil, fmt.Errorf("invalid idle timeout %v: must be positive", o.IdleTimeout)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	// Sessions without kernel stamps count time with the TSC: calibrate it
	// now rather than when the first of them starts.
	clock.Calibrate()
	return &Reflector{o: o, log: log, live: make(map[uint32]*reflectSession)}, nil
}

// Serve accepts control connections on ln until ctx is done, then stops every
// session and returns once all of them have released their sockets.
func (r *Reflector) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept control connection: %w", err)
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			r.handle(ctx, c)
		}()
	}
}

// handle runs one control connection.
func (r *Reflector) handle(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	log := r.log.With("peer", nc.RemoteAddr().String())
	stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Now()) })
	defer stop()
	c := newControl(nc)
	// A deadline set after ctx ended would override the one the AfterFunc
	// set; checking ctx after every SetDeadline closes that race.
	nc.SetDeadline(time.Now().Add(r.o.IdleTimeout))
	if ctx.Err() != nil {
		return
	}
	if err := serverHandshake(c, r.o.Secret, r.o.Build); err != nil {
		log.Info("control connection refused", "err", err)
		return
	}
	nc.SetWriteDeadline(time.Time{})
	local := addrPortOf(nc.LocalAddr()).Addr()
	var s *reflectSession
	defer func() {
		if s != nil {
			s.stop()
			r.remove(s)
		}
	}()
	for {
		idle := r.o.IdleTimeout
		if s != nil {
			idle += time.Until(s.hardEnd)
		}
		nc.SetReadDeadline(time.Now().Add(idle))
		if ctx.Err() != nil {
			return
		}
		m, err := c.recv()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, io.EOF) {
				log.Info("control connection ended", "err", err)
			}
			return
		}
		switch m.Type {
		case msgOpen:
			if s != nil {
				c.fail(CodeBadOpen, "a session is already open on this control connection")
				return
			}
			if m.Session == nil {
				c.fail(CodeBadOpen, "open without session parameters")
				return
			}
			var err error
			s, err = r.open(*m.Session, local)
			if err != nil {
				var re *RemoteError
				if errors.As(err, &re) {
					c.fail(re.Code, "%s", re.Message)
				} else {
					c.fail(CodeInternal, "open session: %v", err)
				}
				log.Info("session refused", "err", err)
				s = nil
				continue
			}
			log.Info("session opened", "path", s.p.Path, "transport", s.p.Transport, "port", s.ln.Port(), "size", s.p.Size)
			var env *results.Environment
			if r.o.Environment != nil {
				env = r.o.Environment(local)
			}
			if err := c.send(&message{Type: msgOpened, Port: s.ln.Port(), Environment: env}); err != nil {
				return
			}
			s.start()
		case msgClose:
			if s == nil {
				c.fail(CodeBadOpen, "close without an open session")
				return
			}
			rep := s.stop()
			r.remove(s)
			s = nil
			log.Info("session closed", "reflected", rep.Counters["reflected"])
			if err := c.send(&message{Type: msgClosed, Report: rep}); err != nil {
				return
			}
		default:
			c.fail(CodeBadOpen, "unexpected %q message", m.Type)
			return
		}
	}
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// open validates a session request and opens its probe endpoint.
func (r *Reflector) open(p SessionParams, local netip.Addr) (*reflectSession, error) {
	bad := func(format string, args ...any) error {
		return &RemoteError{Code: CodeBadOpen, Message: fmt.Sprintf(format, args...)}
	}
	path, ok := r.o.Paths[p.Path]
	if !ok {
		return nil, bad("path %q not served by this reflector", p.Path)
	}
	if p.Transport != "udp" && p.Transport != "tcp" {
		return nil, bad("unknown transport %q", p.Transport)
	}
	if err := ValidProbeSize(p.Size); err != nil {
		return nil, bad("%v", err)
	}
	if p.Inflight < 0 || p.Inflight > MaxInflight {
		return nil, bad("invalid inflight %d: must be in [0, %d]", p.Inflight, MaxInflight)
	}
	if p.Duration <= 0 {
		return nil, bad("session duration %v must be positive", p.Duration)
	}
	if p.Duration > r.o.MaxDuration {
		return nil, &RemoteError{Code: CodeLimit, Message: fmt.Sprintf("session duration %v exceeds the reflector's limit %v (--max-duration)", p.Duration, r.o.MaxDuration)}
	}
	cpuID := r.o.CPU
	if p.CPU >= 0 {
		cpuID = p.CPU
	}
	if err := cpu.Check(cpuID); err != nil {
		return nil, bad("reflector %v", err)
	}
	s := &reflectSession{r: r, p: p, cpu: cpuID, done: make(chan struct{})}
	r.mu.Lock()
	if len(r.live) >= r.o.MaxSessions {
		r.mu.Unlock()
		return nil, &RemoteError{Code: CodeLimit, Message: fmt.Sprintf("reflector busy: %d sessions live (--max-sessions)", len(r.live))}
	}
	if _, dup := r.live[p.Token]; dup {
		r.mu.Unlock()
		return nil, bad("session token already in use; retry with another token")
	}
	r.live[p.Token] = s
	r.mu.Unlock()
	ln, err := path.Listen(ListenSpec{
		ConnSpec: ConnSpec{Transport: p.Transport, Wait: p.Wait, BusyPoll: p.BusyPoll, Timestamping: p.Timestamping, Size: p.Size,
			Inflight: p.Inflight, XDPPass: p.XDPPass},
		Local: netip.AddrPortFrom(local, 0),
	})
	if err != nil {
		r.remove(s)
		return nil, bad("open probe endpoint: %v", err)
	}
	s.ln = ln
	s.hardEnd = time.Now().Add(p.Duration + sessionGrace)
	return s, nil
}

func (r *Reflector) remove(s *reflectSession) {
	r.mu.Lock()
	if r.live[s.p.Token] == s {
		delete(r.live, s.p.Token)
	}
	r.mu.Unlock()
}

// reflectSession is one live session on the reflector.
type reflectSession struct {
	r       *Reflector
	p       SessionParams
	cpu     int
	ln      Listener
	hardEnd time.Time
	quit    atomic.Bool
	done    chan struct{}
	report  *ReflectorReport
	started bool
}

func (s *reflectSession) start() {
	s.started = true
	s.r.wg.Add(1)
	go func() {
		defer s.r.wg.Done()
		defer close(s.done)
		s.report = s.run()
	}()
}

// stop ends the session, waits for its thread and returns its report.
func (s *reflectSession) stop() *ReflectorReport {
	s.quit.Store(true)
	if !s.started {
		s.ln.Close()
		return &ReflectorReport{Counters: map[string]uint64{}, CPU: -1}
	}
	<-s.done
	return s.report
}

// run is the session's reflect loop, on its own locked (and optionally pinned) thread.
func (s *reflectSession) run() *ReflectorReport {
	rep := &ReflectorReport{Counters: map[string]uint64{}, CPU: -1}
	defer s.ln.Close()
	restore, err := cpu.Pin(s.cpu)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("not pinned: %v", err))
		restore, _ = cpu.Pin(-1)
	}
	defer restore()
	defer cpu.ClaimP()()
	rep.CPU = cpu.Current()
	if err == nil && s.cpu >= 0 && !cpu.Exclusive() {
		rep.Notes = append(rep.Notes, "reflector: "+sharedCPUNote(s.cpu))
	}

	conn, err := s.acceptConn()
	if err != nil {
		rep.Notes = append(rep.Notes, err.Error())
		return rep
	}
	defer conn.Close()
	rl := newReflectLoop(s.p, s.r.o.IdleTimeout, time.Now())
	rl.yielder = cpu.NewYielder(0)
	release := nogc.Hold()
	rl.loop(conn, s)
	gcCycles := release()
	rl.finish(conn, rep)
	if gcCycles > 0 {
		// Process-wide: a cycle during a concurrent session counts here too.
		rep.Counters["gc_cycles"] = gcCycles
	}
	return rep
}

func (s *reflectSession) acceptConn() (Conn, error) {
	end := time.Now().Add(acceptTimeout)
	for {
		if s.quit.Load() {
			return nil, errors.New("session closed before the sender connected")
		}
		deadline := time.Now().Add(pollSlice)
		conn, err := s.ln.Accept(deadline)
		if err == nil {
			return conn, nil
		}
		if !errors.Is(err, ErrTimeout) {
			return nil, fmt.Errorf("accept probe connection: %w", err)
		}
		if time.Now().After(end) {
			return nil, fmt.Errorf("sender did not connect within %v", acceptTimeout)
		}
	}
}
