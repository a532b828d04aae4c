package bench

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/stackgap/stackgap/results"
)

// The control protocol runs over one TCP connection from the sender to the
// reflector. Every message is a 4-byte big-endian length followed by a JSON
// object with a "type" field. The sender speaks first:
//
//	sender → hello{version, nonce}        reflector → hello{version, nonce, auth}  or error
//	[sender → auth{mac}                   reflector → auth_ok{mac}                  or error]
//	sender → open{session parameters}     reflector → opened{port, environment}     or error
//	sender → close{}                      reflector → closed{counters, series, stamps}
//	… more open/close pairs …
//
// With a shared secret both sides prove they know it without sending it:
// mac = HMAC-SHA256(secret, role ‖ reflector nonce ‖ sender nonce), role
// "stackgap-v1 sender" or "stackgap-v1 reflector". A version mismatch is
// answered with an error naming both versions, then the connection closes.
const (
	// ControlVersion is the control protocol version. Both ends must speak the same one.
	ControlVersion = 1
	// DefaultPort is the reflector's default control port.
	DefaultPort = 7878
	// maxMessage bounds one control message; a reflector's end-of-session data
	// for millions of probes fits, a corrupt length prefix does not allocate gigabytes.
	maxMessage = 256 << 20
	nonceSize  = 32
	controlTag = "stackgap"
)

// Control message types.
const (
	msgHello  = "hello"
	msgAuth   = "auth"
	msgAuthOK = "auth_ok"
	msgOpen   = "open"
	msgOpened = "opened"
	msgClose  = "close"
	msgClosed = "closed"
	msgError  = "error"
)

// Error codes carried by error messages, so the sender can print one precise line.
const (
	CodeVersion  = "version"
	CodeAuth     = "auth"
	CodeLimit    = "limit"
	CodeBadOpen  = "bad_request"
	CodeInternal = "internal"
)

// RemoteError is an error reported by the other end of the control channel.
type RemoteError struct {
	Code    string
	Message string
}

func (e *RemoteError) Error() string { return "reflector: " + e.Message }

// ErrVersionMismatch is wrapped by errors about incompatible control protocol versions.
var ErrVersionMismatch = errors.New("control protocol version mismatch")

// ErrAuth is wrapped by shared-secret authentication failures.
var ErrAuth = errors.New("authentication failed")

type message struct {
	Type string `json:"type"`

	// hello
	Tool    string `json:"tool,omitempty"`
	Version int    `json:"version,omitempty"`
	Nonce   []byte `json:"nonce,omitempty"`
	Auth    bool   `json:"auth,omitempty"`
	Build   string `json:"build,omitempty"`

	// auth, auth_ok
	MAC []byte `json:"mac,omitempty"`

	// open, opened
	Session *SessionParams `json:"session,omitempty"`
	Port    uint16         `json:"port,omitempty"`
	// Environment is the reflector's host description, sent with opened.
	Environment *results.Environment `json:"environment,omitempty"`

	// closed
	Report *ReflectorReport `json:"report,omitempty"`

	// error
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// SessionParams is what the sender asks the reflector for when it opens a session.
type SessionParams struct {
	Path      string        `json:"path"`
	Transport string        `json:"transport"`
	Size      int           `json:"size"`
	Duration  time.Duration `json:"duration_ns"`
	Token     uint32        `json:"token"`
	Wait      WaitStrategy  `json:"wait"`
	// CPU pins the reflector's session thread; -1 leaves it to the reflector's default.
	CPU          int           `json:"cpu"`
	BusyPoll     time.Duration `json:"busy_poll_ns,omitempty"`
	Timestamping bool          `json:"timestamping"`
	// XDPPass runs a path that does not use XDP behind an XDP_PASS program.
	XDPPass bool `json:"xdp_pass,omitempty"`
	// Inflight is the most probes the sender keeps in flight; 0 when the
	// sender does not say (an older one). A path may size its receive
	// buffers to it (ConnSpec.Inflight).
	Inflight int `json:"inflight,omitempty"`
}

// ReflectorReport is what the reflector returns when a session closes.
type ReflectorReport struct {
	Counters map[string]uint64 `json:"counters"`
	Series   []*results.Series `json:"series"`
	// Stamps holds per-probe reflector stamps that did not fit in-band, keyed
	// by sequence number (probes smaller than InBandSize).
	Stamps []ReflectStamp `json:"stamps,omitempty"`
	// CPU is the CPU the reflector's session thread ran on (-1 unknown).
	CPU int `json:"cpu"`
	// Notes are things the reflector wants the report to say (e.g. busy-poll inert).
	Notes []string `json:"notes,omitempty"`
	// UserClock is what counted the reflector's user stamps: "tsc" or "vdso"
	// (see internal/clock).
	UserClock string `json:"user_clock,omitempty"`
}

// ReflectStamp is one probe's reflector-side durations, sent over the control channel.
type ReflectStamp struct {
	Seq       uint64 `json:"s"`
	RxStack   uint32 `json:"r"`
	Residence uint32 `json:"d"`
}

// control frames messages on one connection.
type control struct {
	conn net.Conn
	r    *bufio.Reader
}

func newControl(c net.Conn) *control { return &control{conn: c, r: bufio.NewReader(c)} }

func (c *control) send(m *message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s message: %w", m.Type, err)
	}
	buf := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(buf, uint32(len(body)))
	if _, err := c.conn.Write(append(buf, body...)); err != nil {
		return fmt.Errorf("send %s message: %w", m.Type, err)
	}
	return nil
}

// recv reads one message. An error message from the peer becomes a *RemoteError.
func (c *control) recv() (*message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, fmt.Errorf("read control message: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxMessage {
		return nil, fmt.Errorf("read control message: bad length %d (not a stackgap peer?)", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, fmt.Errorf("read control message: %w", err)
	}
	m := new(message)
	if err := json.Unmarshal(body, m); err != nil {
		return nil, fmt.Errorf("decode control message: %w", err)
	}
	if m.Type == msgError {
		return nil, &RemoteError{Code: m.Code, Message: m.Message}
	}
	return m, nil
}

// expect reads one message and checks its type.
func (c *control) expect(typ string) (*message, error) {
	m, err := c.recv()
	if err != nil {
		return nil, err
	}
	if m.Type != typ {
		return nil, fmt.Errorf("control protocol: expected %q message, got %q", typ, m.Type)
	}
	return m, nil
}

func (c *control) fail(code, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	_ = c.send(&message{Type: msgError, Code: code, Message: msg})
	return &RemoteError{Code: code, Message: msg}
}

func newNonce() ([]byte, error) {
	b := make([]byte, nonceSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random nonce: %w", err)
	}
	return b, nil
}

func authMAC(secret []byte, role string, reflectorNonce, senderNonce []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("stackgap-v1 " + role))
	h.Write(reflectorNonce)
	h.Write(senderNonce)
	return h.Sum(nil)
}

// clientHandshake runs the sender's side of hello and authentication.
func clientHandshake(c *control, secret []byte, build string) error {
	nonce, err := newNonce()
	if err != nil {
		return err
	}
	if err := c.send(&message{Type: msgHello, Tool: controlTag, Version: ControlVersion, Nonce: nonce, Build: build}); err != nil {
		return err
	}
	m, err := c.recv()
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == CodeVersion {
			return fmt.Errorf("%w: %s", ErrVersionMismatch, re.Message)
		}
		return err
	}
	if m.Type != msgHello || m.Tool != controlTag {
		return fmt.Errorf("control protocol: peer is not a stackgap reflector")
	}
	if m.Version != ControlVersion {
		return fmt.Errorf("%w: sender speaks version %d, reflector speaks version %d; run the same stackgap release on both hosts",
			ErrVersionMismatch, ControlVersion, m.Version)
	}
	if !m.Auth {
		if secret != nil {
			return fmt.Errorf("%w: a secret was given but the reflector does not require one; refusing an unauthenticated reflector", ErrAuth)
		}
		return nil
	}
	if secret == nil {
		return fmt.Errorf("%w: the reflector requires a shared secret; pass --secret-file", ErrAuth)
	}
	if len(m.Nonce) != nonceSize {
		return fmt.Errorf("control protocol: bad reflector nonce")
	}
	if err := c.send(&message{Type: msgAuth, MAC: authMAC(secret, "sender", m.Nonce, nonce)}); err != nil {
		return err
	}
	ok, err := c.recv()
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Code == CodeAuth {
			return fmt.Errorf("%w: %s", ErrAuth, re.Message)
		}
		return err
	}
	if ok.Type != msgAuthOK || !hmac.Equal(ok.MAC, authMAC(secret, "reflector", m.Nonce, nonce)) {
		return fmt.Errorf("%w: the reflector could not prove it knows the secret", ErrAuth)
	}
	return nil
}

// serverHandshake runs the reflector's side of hello and authentication.
func serverHandshake(c *control, secret []byte, build string) error {
	m, err := c.expect(msgHello)
	if err != nil {
		return err
	}
	if m.Tool != controlTag {
		return c.fail(CodeBadOpen, "not a stackgap sender")
	}
	if m.Version != ControlVersion {
		return c.fail(CodeVersion, "sender speaks control protocol version %d, reflector speaks version %d; run the same stackgap release on both hosts",
			m.Version, ControlVersion)
	}
	nonce, err := newNonce()
	if err != nil {
		return c.fail(CodeInternal, "%v", err)
	}
	if err := c.send(&message{Type: msgHello, Tool: controlTag, Version: ControlVersion, Nonce: nonce, Auth: secret != nil, Build: build}); err != nil {
		return err
	}
	if secret == nil {
		return nil
	}
	a, err := c.expect(msgAuth)
	if err != nil {
		return err
	}
	if !hmac.Equal(a.MAC, authMAC(secret, "sender", nonce, m.Nonce)) {
		return c.fail(CodeAuth, "wrong shared secret")
	}
	return c.send(&message{Type: msgAuthOK, MAC: authMAC(secret, "reflector", nonce, m.Nonce)})
}
