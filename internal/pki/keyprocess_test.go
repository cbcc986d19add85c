package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a key helper (see TestMain).
const helperEnv = "PKI_TEST_KEY_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "serve":
		if err := LowerPriority(); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		if err := ServeKeys(os.Stdin, os.Stdout); err != nil {
			os.Exit(2)
		}
		os.Exit(0)
	case "garbage":
		_, _ = os.Stdout.Write([]byte{0, 0, 0, 4, 'j', 'u', 'n', 'k'})
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "one-then-exit":
		// Serves exactly one key, then exits as if it crashed.
		_ = ServeKeys(io.LimitReader(os.Stdin, 1), os.Stdout)
		time.Sleep(200 * time.Millisecond) // the key in progress is written
		os.Exit(1)
	}
}

// startHelper starts this test binary as a key helper in the given mode.
func startHelper(t *testing.T, mode string, ahead int) *KeyProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(helperEnv, mode)
	p := StartKeyProcess(nil, ahead, exe, "-test.run=^$")
	t.Cleanup(p.Close)
	return p
}

func TestKeyProcessServesKeys(t *testing.T) {
	p := startHelper(t, "serve", 2)
	seen := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := p.Get()
			if err != nil {
				t.Error(err)
				return
			}
			if k.N.BitLen() != 2048 {
				t.Errorf("key of %d bits", k.N.BitLen())
			}
			if err := k.Validate(); err != nil {
				t.Errorf("invalid key: %v", err)
			}
			mu.Lock()
			seen[k.N.String()] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(seen) != 5 {
		t.Errorf("5 Gets gave %d distinct keys", len(seen))
	}
	// The keys came from the helper: it is still running, no fallback.
	if err := p.Err(); err != nil {
		t.Fatalf("helper gone: %v", err)
	}
	pid := p.cmd.Process.Pid
	p.Close()
	if p.cmd.ProcessState == nil {
		t.Errorf("helper %d not reaped after Close", pid)
	}
	if err := p.Err(); err == nil {
		t.Error("Err is nil after Close")
	}
	if k, err := p.Get(); err != nil || k.N.BitLen() != 2048 {
		t.Errorf("Get after Close: %v", err)
	}
}

func TestKeyProcessLowPriority(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("thread priorities are set on Linux only")
	}
	p := startHelper(t, "serve", 1)
	if _, err := p.Get(); err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile("/proc/" + itoa(p.cmd.Process.Pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Field 19 of /proc/PID/stat is the nice value; the command name (field
	// 2) may hold spaces, so count from its closing parenthesis.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if nice := fields[16]; nice != "19" {
		t.Errorf("helper runs at nice %s, want 19", nice)
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			return string(b[i:])
		}
	}
}

func TestKeyProcessFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) *KeyProcess
		keys  int // keys the helper itself delivers before failing
	}{
		{"no such program", func(t *testing.T) *KeyProcess {
			p := StartKeyProcess(nil, 1, "/nonexistent/cloudhsm-local-helper")
			t.Cleanup(p.Close)
			return p
		}, 0},
		{"garbage answer", func(t *testing.T) *KeyProcess { return startHelper(t, "garbage", 1) }, 0},
		{"helper dies", func(t *testing.T) *KeyProcess { return startHelper(t, "one-then-exit", 2) }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.start(t)
			for i := range 3 {
				k, err := p.Get()
				if err != nil || k.N.BitLen() != 2048 {
					t.Fatalf("Get %d: %v", i, err)
				}
			}
			select {
			case <-p.dead:
			case <-time.After(30 * time.Second):
				t.Fatal("helper failure not noticed")
			}
			if p.Err() == nil {
				t.Error("Err is nil after the helper failed")
			}
		})
	}
}

func TestReadKeyFrameRefuses(t *testing.T) {
	frame := func(n uint32, body []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, n)
		return append(b, body...)
	}
	for name, in := range map[string][]byte{
		"empty":       nil,
		"zero length": frame(0, nil),
		"too long":    frame(maxKeyFrame+1, nil),
		"short body":  frame(100, []byte("abc")),
		"not a key":   frame(3, []byte("abc")),
	} {
		if _, err := readKeyFrame(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	key, err := generateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := writeKeyFrame(&mu, &buf, key); err != nil {
		t.Fatal(err)
	}
	got, err := readKeyFrame(&buf)
	if err != nil || !got.Equal(key) {
		t.Fatalf("round trip: %v", err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if err := writeKeyFrame(&mu, &buf, small); err != nil {
		t.Fatal(err)
	}
	if _, err := readKeyFrame(&buf); err == nil {
		t.Error("accepted a 1024-bit key")
	}
}
