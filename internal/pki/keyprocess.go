package pki

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
)

// KeySource hands out RSA keys for HSM identities. KeyPool and KeyProcess
// implement it.
type KeySource interface {
	// Get returns a new key, waiting for one if none is ready.
	Get() (*rsa.PrivateKey, error)
	// Close releases what the source holds (goroutines, a helper process).
	Close()
}

// maxKeyFrame bounds the length of one key sent by the helper process: a
// PKCS #1 RSA 2048 private key is about 1,200 bytes.
const maxKeyFrame = 16 << 10

// KeyProcess generates RSA keys in a helper process at the lowest CPU
// priority and keeps a few ready. A key takes a core for tens of
// milliseconds; generated in the server's own process it would hold one of
// the Go scheduler's processors the whole time, and the requests scheduled
// behind it would wait for a thread the kernel runs last. In another
// process it only uses CPU the server leaves idle.
//
// The helper reads one byte per key wanted on its stdin and writes each key
// (a 4-byte big-endian length, then PKCS #1 DER) on its stdout; ServeKeys is
// its side. If the helper cannot be started or dies, Get generates keys in
// this process instead, so HSM creation never fails for want of a helper.
type KeyProcess struct {
	ready chan *rsa.PrivateKey
	// dead is closed when the helper is gone (failed to start, exited, or
	// closed); Get then generates keys itself.
	dead chan struct{}

	mu     sync.Mutex // guards stdin writes and cmd
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	closed bool
	wg     sync.WaitGroup
	err    error // why the helper is gone; set before dead is closed
	log    *slog.Logger
}

// StartKeyProcess starts the helper command (typically this program's own
// executable with a subcommand that calls ServeKeys) and asks it for ahead
// keys at once; each Get asks for one more, so up to ahead keys are ready or
// being made at any time.
// A helper that fails is reported to log (when not nil) once.
func StartKeyProcess(log *slog.Logger, ahead int, name string, args ...string) *KeyProcess {
	if ahead < 1 {
		ahead = 1
	}
	p := &KeyProcess{ready: make(chan *rsa.PrivateKey, ahead), dead: make(chan struct{}), log: log}
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		p.fail(fmt.Errorf("key helper: stdin: %w", err))
		return p
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		p.fail(fmt.Errorf("key helper: stdout: %w", err))
		return p
	}
	if err := cmd.Start(); err != nil {
		p.fail(fmt.Errorf("key helper: start %s: %w", name, err))
		return p
	}
	p.cmd, p.stdin = cmd, stdin
	p.ask(ahead)
	p.wg.Add(1)
	go p.receive(bufio.NewReader(stdout))
	return p
}

func (p *KeyProcess) fail(err error) {
	p.err = err
	close(p.dead)
	if p.log != nil {
		p.log.Warn("HSM keys are generated in the server process from now on", "reason", err)
	}
}

// ask requests n more keys from the helper.
func (p *KeyProcess) ask(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.stdin == nil {
		return
	}
	// A write error means the helper is gone; receive sees it too and
	// closes dead.
	_, _ = p.stdin.Write(make([]byte, n))
}

// receive reads keys from the helper until it stops, then reaps it.
func (p *KeyProcess) receive(r *bufio.Reader) {
	defer p.wg.Done()
	var err error
	for {
		var key *rsa.PrivateKey
		if key, err = readKeyFrame(r); err != nil {
			break
		}
		// At most ahead keys are ever outstanding, so this never blocks.
		p.ready <- key
	}
	p.mu.Lock()
	closed := p.closed
	if p.stdin != nil {
		_ = p.stdin.Close()
	}
	p.mu.Unlock()
	waitErr := p.cmd.Wait()
	if closed {
		p.err = errors.New("key helper: closed")
		close(p.dead)
		return
	}
	if waitErr != nil {
		err = fmt.Errorf("key helper exited: %w (after %v)", waitErr, err)
	} else {
		err = fmt.Errorf("key helper stopped: %w", err)
	}
	p.fail(err)
}

// Get returns a key from the helper, waiting for the next one if none is
// ready. Without a helper it generates one here at low priority.
func (p *KeyProcess) Get() (*rsa.PrivateKey, error) {
	select {
	case k := <-p.ready:
		p.ask(1)
		return k, nil
	default:
	}
	select {
	case k := <-p.ready:
		p.ask(1)
		return k, nil
	case <-p.dead:
		select {
		case k := <-p.ready: // keys that arrived before the helper stopped
			return k, nil
		default:
		}
		return generateKey()
	}
}

// Err reports why the helper is gone, or nil while it runs.
func (p *KeyProcess) Err() error {
	select {
	case <-p.dead:
		return p.err
	default:
		return nil
	}
}

// Close stops the helper (closing its stdin ends it) and waits for it.
func (p *KeyProcess) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.stdin != nil {
		_ = p.stdin.Close()
	}
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Kill() // a key in progress is not worth waiting for
	}
	p.wg.Wait()
}

func readKeyFrame(r io.Reader) (*rsa.PrivateKey, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxKeyFrame {
		return nil, fmt.Errorf("key helper: bad frame length %d", n)
	}
	der := make([]byte, n)
	if _, err := io.ReadFull(r, der); err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("key helper: %w", err)
	}
	if key.N.BitLen() != keyBits {
		return nil, fmt.Errorf("key helper: got a %d-bit key, want %d", key.N.BitLen(), keyBits)
	}
	return key, nil
}

// ServeKeys is the helper process's side of KeyProcess: for each byte read
// from in it generates one RSA key and writes it to out, using every core
// the process may use, until in ends (when the server closes it or exits);
// it returns then without waiting for keys in progress. Call LowerPriority
// first.
func ServeKeys(in io.Reader, out io.Writer) error {
	requests := make(chan struct{}, 64)
	var (
		mu      sync.Mutex
		failed  error
		workers = runtime.GOMAXPROCS(0)
	)
	for range workers {
		go func() {
			for range requests {
				key, err := rsa.GenerateKey(rand.Reader, keyBits)
				if err == nil {
					err = writeKeyFrame(&mu, out, key)
				}
				if err != nil {
					mu.Lock()
					if failed == nil {
						failed = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	buf := make([]byte, 64)
	var readErr error
	for {
		n, err := in.Read(buf)
		for range n {
			requests <- struct{}{}
		}
		if err != nil {
			if err != io.EOF {
				readErr = err
			}
			break
		}
	}
	close(requests)
	// The server is gone or closing: keys still queued are not wanted.
	mu.Lock()
	defer mu.Unlock()
	if failed != nil {
		return failed
	}
	return readErr
}

func writeKeyFrame(mu *sync.Mutex, out io.Writer, key *rsa.PrivateKey) error {
	der := x509.MarshalPKCS1PrivateKey(key)
	frame := make([]byte, 4+len(der))
	binary.BigEndian.PutUint32(frame, uint32(len(der)))
	copy(frame[4:], der)
	mu.Lock()
	defer mu.Unlock()
	_, err := out.Write(frame)
	return err
}
