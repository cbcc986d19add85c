package pki

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"
)

// IdentityRequest asks for the identity of one HSM.
type IdentityRequest struct {
	HsmID     string
	Now       time.Time
	Partition int
	NonFIPS   bool
	HSM1      bool
	// CSR asks for the cluster CSR signed by the new HSM's key as well
	// (see ClusterCSR).
	CSR bool
}

// IdentitySource makes HSM identities: two RSA 2048 keys and four RSA
// signatures each, tens of milliseconds of a core. LocalIdentities and
// IdentityProcess implement it.
type IdentitySource interface {
	// NewIdentity returns the identity asked for, issued by a, and the
	// cluster CSR when req.CSR is set.
	NewIdentity(a *Authority, req IdentityRequest) (*HSMIdentity, string, error)
	// Close releases what the source holds (goroutines, a helper process).
	Close()
}

// LocalIdentities makes identities in this process, with keys that a
// KeyPool generates ahead of time at low priority.
type LocalIdentities struct {
	keys *KeyPool
}

// NewLocalIdentities returns a source that keeps two keys ready.
func NewLocalIdentities() *LocalIdentities { return &LocalIdentities{keys: NewKeyPool(2)} }

// NewIdentity implements IdentitySource.
func (l *LocalIdentities) NewIdentity(a *Authority, req IdentityRequest) (*HSMIdentity, string, error) {
	return makeIdentity(a, req, l.keys.Get)
}

// Close implements IdentitySource.
func (l *LocalIdentities) Close() { l.keys.Close() }

func makeIdentity(a *Authority, req IdentityRequest, key func() (*rsa.PrivateKey, error)) (*HSMIdentity, string, error) {
	id, err := a.NewHSMIdentityWithOptions(req.HsmID, req.Now, IdentityOptions{
		Partition: req.Partition, NonFIPS: req.NonFIPS, HSM1: req.HSM1, KeySource: key,
	})
	if err != nil {
		return nil, "", err
	}
	if !req.CSR {
		return id, "", nil
	}
	csr, err := ClusterCSR(id, req.Partition, req.NonFIPS, req.HSM1)
	if err != nil {
		return nil, "", fmt.Errorf("pki: cluster CSR: %w", err)
	}
	return id, csr, nil
}

// maxFrame bounds one message between the server and its identity helper:
// an identity is about 8 KB of PEM, an authority about 4 KB.
const maxFrame = 1 << 20

// helperRequest is one message to the identity helper.
type helperRequest struct {
	Seq       uint64 // echoed in the answer
	Authority []byte // Authority.MarshalBinary
	Request   IdentityRequest
}

// helperAnswer is the identity helper's answer to one request.
type helperAnswer struct {
	Seq      uint64
	Identity *HSMIdentity `json:",omitempty"`
	CSR      string       `json:",omitempty"`
	Error    string       `json:",omitempty"`
}

// DefaultHelperTimeout is how long a request waits for the identity helper
// before the server makes the identity itself.
const DefaultHelperTimeout = 2 * time.Second

// IdentityProcess makes identities in a helper process running at the
// lowest CPU priority. Made in the server's own process, an identity holds
// one of the Go scheduler's processors for the whole key generation and
// signing, and requests scheduled behind it wait for a thread the kernel
// runs last; in another process it only uses CPU the server leaves idle.
//
// The helper (ServeIdentities) reads requests on its stdin and writes
// answers on its stdout, in order, each a 4-byte big-endian length and a
// JSON document. A CPU that is never idle would starve the helper, so a
// request that waits longer than the timeout is made in this process at
// normal priority, and so is every request while the helper still owes an
// answer: requests never queue in the helper, and a write to it never
// waits for room in the pipe. The late answer is dropped when it comes. If
// the helper cannot be started, dies or answers nonsense, identities are
// made in this process from then on: HSM creation never fails for want of
// a helper.
type IdentityProcess struct {
	log     *slog.Logger
	timeout time.Duration
	dead    chan struct{} // closed when the helper is no longer used
	stopped chan struct{} // closed when the reader has reaped the helper

	mu      sync.Mutex // guards the fields below and writes to stdin
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	seq     uint64
	waiting map[uint64]chan helperAnswer // requests waited for, by Seq
	// owed counts requests sent and not answered yet, waited for or not.
	owed     int
	err      error // why the helper is no longer used
	closed   bool
	fallback *LocalIdentities
	// inline counts identities made here because the helper was late.
	inline int
}

// StartIdentityProcess starts the helper command (typically this program's
// own executable with a subcommand that calls ServeIdentities). A helper
// that fails is reported to log (when not nil) once.
func StartIdentityProcess(log *slog.Logger, name string, args ...string) *IdentityProcess {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = helperAttr()
	// The helper's stdin is a pipe of ours (cmd.StdinPipe's hides the
	// *os.File), so that writes to it can have a deadline.
	helperIn, stdin, err := os.Pipe()
	if err == nil {
		cmd.Stdin = helperIn
		var stdout io.ReadCloser
		if stdout, err = cmd.StdoutPipe(); err == nil {
			if err = cmd.Start(); err == nil {
				_ = helperIn.Close() // the helper holds its own copy
				return newIdentityProcess(log, cmd, stdin, stdout)
			}
		}
		_ = helperIn.Close()
		_ = stdin.Close()
	}
	p := newIdentityProcess(log, nil, nil, nil)
	p.mu.Lock()
	p.fail(fmt.Errorf("start identity helper %s: %w", name, err))
	p.mu.Unlock()
	return p
}

// newIdentityProcess talks to a helper over stdin and stdout (nil: no
// helper); cmd, when not nil, is reaped once stdout ends.
func newIdentityProcess(log *slog.Logger, cmd *exec.Cmd, stdin io.WriteCloser, stdout io.Reader) *IdentityProcess {
	p := &IdentityProcess{
		log: log, timeout: DefaultHelperTimeout,
		dead: make(chan struct{}), stopped: make(chan struct{}),
		cmd: cmd, stdin: stdin, waiting: map[uint64]chan helperAnswer{},
	}
	if stdout == nil {
		close(p.stopped)
	} else {
		go p.receive(bufio.NewReader(stdout))
	}
	return p
}

// receive hands each answer to the request waiting for it, until the
// helper stops; then it reaps the helper.
func (p *IdentityProcess) receive(r *bufio.Reader) {
	defer close(p.stopped)
	for {
		var ans helperAnswer
		if err := readFrame(r, &ans); err != nil {
			p.mu.Lock()
			p.fail(fmt.Errorf("identity helper: answer: %w", err))
			p.mu.Unlock()
			break
		}
		p.mu.Lock()
		ch := p.waiting[ans.Seq] // nil for a late answer: dropped
		delete(p.waiting, ans.Seq)
		p.owed--
		p.mu.Unlock()
		if ch != nil {
			ch <- ans
		}
	}
	if p.cmd != nil {
		_ = p.cmd.Wait()
	}
}

// fail stops using the helper; p.mu is held (or p is not shared yet).
func (p *IdentityProcess) fail(err error) {
	if p.err != nil {
		return
	}
	p.err = err
	close(p.dead)
	if p.stdin != nil {
		_ = p.stdin.Close()
	}
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
	}
	if p.log != nil && !errors.Is(err, errHelperClosed) {
		p.log.Warn(HelperGoneMessage, "reason", err)
	}
}

var errHelperClosed = errors.New("identity helper closed")

// HelperGoneMessage is the warning logged once when the identity helper
// fails for good (it could not start, died, or answered nonsense).
const HelperGoneMessage = "HSM identities are made in the server process from now on"

// NewIdentity implements IdentitySource.
func (p *IdentityProcess) NewIdentity(a *Authority, req IdentityRequest) (*HSMIdentity, string, error) {
	id, csr, err, answered := p.ask(a, req)
	if answered {
		return id, csr, err
	}
	p.mu.Lock()
	gone := p.err != nil && !p.closed
	if gone && p.fallback == nil {
		p.fallback = NewLocalIdentities()
	}
	fallback := p.fallback
	if !gone {
		p.inline++
	}
	p.mu.Unlock()
	if gone {
		return fallback.NewIdentity(a, req)
	}
	// The helper is late, busy or closed: the caller is waiting, so the
	// keys are made now at normal priority.
	return makeIdentity(a, req, generateKeyNow)
}

// generateKeyNow generates a key on the calling goroutine's thread.
func generateKeyNow() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, keyBits) }

// helperRefusal is an error the helper answered for one request.
type helperRefusal struct{ msg string }

func (e *helperRefusal) Error() string { return "identity helper: " + e.msg }

// ask sends req to the helper and waits for its answer. answered is false
// when the helper is gone, failed or late: the caller makes the identity.
func (p *IdentityProcess) ask(a *Authority, req IdentityRequest) (id *HSMIdentity, csr string, err error, answered bool) {
	auth, err := a.MarshalBinary()
	if err != nil {
		return nil, "", err, true
	}
	p.mu.Lock()
	if p.err != nil || p.owed > 0 {
		p.mu.Unlock()
		return nil, "", nil, false
	}
	p.seq++
	seq := p.seq
	ch := make(chan helperAnswer, 1)
	p.waiting[seq] = ch
	p.owed++
	// With nothing owed the pipe is empty and one request fits in it; the
	// deadline (where the pipe has one) covers a helper that stopped
	// reading anyway.
	if d, ok := p.stdin.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Now().Add(p.timeout))
	}
	if err := writeFrame(p.stdin, helperRequest{Seq: seq, Authority: auth, Request: req}); err != nil {
		delete(p.waiting, seq)
		p.fail(fmt.Errorf("identity helper: send: %w", err))
		p.mu.Unlock()
		return nil, "", nil, false
	}
	p.mu.Unlock()
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	select {
	case ans := <-ch:
		if ans.Error != "" {
			return nil, "", &helperRefusal{ans.Error}, true
		}
		if err := checkAnswer(ans, req, a); err != nil {
			p.mu.Lock()
			p.fail(fmt.Errorf("identity helper: %w", err))
			p.mu.Unlock()
			return nil, "", nil, false
		}
		return ans.Identity, ans.CSR, nil, true
	case <-p.dead:
		return nil, "", nil, false
	case <-timer.C:
		p.mu.Lock()
		delete(p.waiting, seq)
		p.mu.Unlock()
		return nil, "", nil, false
	}
}

// checkAnswer checks an answer's identity (see checkIdentity) and CSR.
func checkAnswer(ans helperAnswer, req IdentityRequest, a *Authority) error {
	if err := checkIdentity(ans.Identity, req, a); err != nil {
		return err
	}
	if req.CSR && ans.CSR == "" {
		return errors.New("no CSR in the answer")
	}
	return nil
}

// checkIdentity checks that an identity from the helper is one this
// authority issued, so that a broken helper cannot hand out garbage. The
// keys are not parsed here (a third of the check's cost); the cluster CSR
// and the HsmCertificate, checked against each other when the cluster is
// initialized, are made from them.
func checkIdentity(id *HSMIdentity, req IdentityRequest, a *Authority) error {
	if id == nil {
		return errors.New("no identity in the answer")
	}
	awsHW, err := parseCertPEMString(id.AwsHardwareCertificate)
	if err != nil {
		return fmt.Errorf("AWS hardware certificate: %w", err)
	}
	if err := awsHW.CheckSignatureFrom(a.aws.cert); err != nil {
		return fmt.Errorf("AWS hardware certificate not issued by the AWS root: %w", err)
	}
	hsm, err := parseCertPEMString(id.HsmCertificate)
	if err != nil {
		return fmt.Errorf("HSM certificate: %w", err)
	}
	if err := hsm.CheckSignatureFrom(awsHW); err != nil {
		return fmt.Errorf("HSM certificate not issued by the hardware key: %w", err)
	}
	if id.PartitionKeyPEM == "" || id.HardwareKeyPEM == "" {
		return errors.New("keys missing")
	}
	return nil
}

// Err reports why the helper is no longer used, or nil while it is.
func (p *IdentityProcess) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Close implements IdentitySource: it stops the helper and waits for it.
func (p *IdentityProcess) Close() {
	p.mu.Lock()
	p.fail(errHelperClosed)
	p.closed = true
	fallback := p.fallback
	p.mu.Unlock()
	<-p.stopped
	if fallback != nil {
		fallback.Close()
	}
}

func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(frame, b...))
	return err
}

func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxFrame {
		return fmt.Errorf("bad frame length %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// ServeIdentities is the helper process's side of IdentityProcess: it
// answers each request read from in on out, with keys generated ahead of
// time, until in ends. Call LowerPriority first.
func ServeIdentities(in io.Reader, out io.Writer) error {
	keys := NewKeyPool(4)
	defer keys.Close()
	r := bufio.NewReader(in)
	var lastRaw []byte
	var last *Authority
	for {
		var req helperRequest
		if err := readFrame(r, &req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		ans := helperAnswer{Seq: req.Seq}
		if last == nil || string(req.Authority) != string(lastRaw) {
			a, err := ParseAuthority(req.Authority)
			if err != nil {
				ans.Error = err.Error()
			} else {
				last, lastRaw = a, req.Authority
			}
		}
		if ans.Error == "" {
			id, csr, err := makeIdentity(last, req.Request, keys.Get)
			if err != nil {
				ans.Error = err.Error()
			} else {
				ans.Identity, ans.CSR = id, csr
			}
		}
		if err := writeFrame(out, ans); err != nil {
			return err
		}
	}
}

func parseCertPEMString(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}
