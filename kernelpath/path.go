package kernelpath

import (
	"time"

	"github.com/stackgap/stackgap/bench"
)

// PathName is the kernel path's name on the command line and in results.
const PathName = "kernel"

// Path is the kernel socket path as the engine sees it: it implements
// bench.Path on top of Dial and Listen.
type Path struct{}

var _ bench.Path = (*Path)(nil)

// NewPath returns the kernel path.
func NewPath() *Path { return &Path{} }

// Name returns PathName.
func (*Path) Name() string { return PathName }

// optionsOf maps the engine's session choices to Options. Hardware stamps are
// not requested: they need a NIC set up for them, which the engine does not
// ask for here.
func optionsOf(s bench.ConnSpec) Options {
	return Options{
		Transport:    Transport(s.Transport),
		Wait:         s.Wait,
		BusyPoll:     s.BusyPoll,
		Timestamping: s.Timestamping,
	}
}

// Dial opens the sender's end (see Dial).
func (*Path) Dial(spec bench.DialSpec) (bench.Conn, error) {
	c, err := Dial(spec.Local, spec.Remote, optionsOf(spec.ConnSpec))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Listen opens the reflector's end (see Listen).
func (*Path) Listen(spec bench.ListenSpec) (bench.Listener, error) {
	l, err := Listen(spec.Local, optionsOf(spec.ConnSpec))
	if err != nil {
		return nil, err
	}
	return pathListener{l}, nil
}

// pathListener adapts *Listener to bench.Listener.
type pathListener struct{ *Listener }

func (l pathListener) Accept(deadline time.Time) (bench.Conn, error) {
	c, err := l.Listener.Accept(deadline)
	if err != nil {
		return nil, err
	}
	return c, nil
}
