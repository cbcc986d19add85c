package pki

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv makes the test binary act as an identity helper (see TestMain).
const helperEnv = "PKI_TEST_IDENTITY_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "serve":
		if err := LowerPriority(); err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		if err := ServeIdentities(os.Stdin, os.Stdout); err != nil {
			os.Exit(2)
		}
		os.Exit(0)
	case "garbage":
		_, _ = os.Stdout.Write([]byte{0, 0, 0, 4, 'j', 'u', 'n', 'k'})
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "forged":
		// Answers with an identity issued by another authority.
		other, err := NewAuthority(time.Now())
		if err != nil {
			os.Exit(4)
		}
		var req helperRequest
		for readFrame(os.Stdin, &req) == nil {
			id, csr, err := makeIdentity(other, req.Request, generateKey)
			if err != nil {
				os.Exit(5)
			}
			_ = writeFrame(os.Stdout, helperAnswer{Seq: req.Seq, Identity: id, CSR: csr})
		}
		os.Exit(0)
	case "silent":
		// Reads requests and never answers, like a helper the CPU starves.
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	case "one-then-exit":
		// Answers one request, then exits as if it crashed.
		_ = ServeIdentities(io.LimitReader(os.Stdin, 1), os.Stdout)
		os.Exit(1)
	}
}

// startHelper starts this test binary as an identity helper in mode.
func startHelper(t *testing.T, mode string) *IdentityProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(helperEnv, mode)
	p := StartIdentityProcess(nil, exe, "-test.run=^$")
	t.Cleanup(p.Close)
	return p
}

// patientHelper is startHelper with a timeout long enough that the helper's
// answer, whatever it is, comes before it: the helper runs at the lowest CPU
// priority, and on a busy machine (other test packages at once) it may not
// answer within DefaultHelperTimeout, when the request is made here without
// the helper's failure being seen. The late helper has tests of its own.
func patientHelper(t *testing.T, mode string) *IdentityProcess {
	p := startHelper(t, mode)
	p.mu.Lock()
	p.timeout = 2 * time.Minute
	p.mu.Unlock()
	return p
}

// checkHelperIdentity fails the test unless id chains to f's authority and csr
// (when wanted) is signed by id's partition key.
func checkHelperIdentity(t *testing.T, f *fixtureSet, id *HSMIdentity, csr string, wantCSR bool) {
	t.Helper()
	if err := checkIdentity(id, IdentityRequest{}, f.auth); err != nil {
		t.Fatal(err)
	}
	mfrHW := parseCertPEM(t, id.ManufacturerHardwareCertificate)
	if err := mfrHW.CheckSignatureFrom(parseCertPEM(t, f.auth.ManufacturerRootPEM())); err != nil {
		t.Errorf("manufacturer hardware certificate: %v", err)
	}
	if !wantCSR {
		if csr != "" {
			t.Error("a CSR nobody asked for")
		}
		return
	}
	key, err := parseClusterCSR(csr)
	if err != nil {
		t.Fatalf("CSR: %v", err)
	}
	if !samePublicKey(key, parseCertPEM(t, id.HsmCertificate)) {
		t.Error("the CSR is not signed by the HSM's partition key")
	}
}

func TestIdentityProcessServes(t *testing.T) {
	f := fixtures(t)
	p := startHelper(t, "serve")
	serials := map[string]bool{}
	for i := range 3 {
		req := IdentityRequest{HsmID: "hsm-helper" + strconv.Itoa(i), Now: f.now, Partition: 1, CSR: i == 0}
		id, csr, err := p.NewIdentity(f.auth, req)
		if err != nil {
			t.Fatal(err)
		}
		checkHelperIdentity(t, f, id, csr, req.CSR)
		serials[id.HsmCertificate] = true
	}
	if len(serials) != 3 {
		t.Errorf("3 requests gave %d distinct identities", len(serials))
	}
	// They came from the helper: it is still in use, no fallback.
	if err := p.Err(); err != nil {
		t.Fatalf("helper gone: %v", err)
	}
	cmd := p.cmd
	p.Close()
	if cmd.ProcessState == nil {
		t.Error("helper not reaped after Close")
	}
	if p.Err() == nil {
		t.Error("Err is nil after Close")
	}
	id, csr, err := p.NewIdentity(f.auth, IdentityRequest{HsmID: "hsm-after", Now: f.now, CSR: true})
	if err != nil {
		t.Fatalf("NewIdentity after Close: %v", err)
	}
	checkHelperIdentity(t, f, id, csr, true)
}

func TestIdentityProcessLowPriority(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("thread priorities are set on Linux only")
	}
	f := fixtures(t)
	p := startHelper(t, "serve")
	if _, _, err := p.NewIdentity(f.auth, IdentityRequest{HsmID: "hsm-nice", Now: f.now}); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(p.cmd.Process.Pid)
	// A process group of its own (field 5 of stat): a terminal's Ctrl-C
	// reaches the server, which stops the helper.
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	if pgrp := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))[2]; pgrp != pid {
		t.Errorf("helper %s is in process group %s, want its own", pid, pgrp)
	}
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		stat, err := os.ReadFile("/proc/" + pid + "/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread ended
		}
		// Fields 19 and 41 of stat are the nice value and the scheduling
		// policy; the command name (field 2) may hold spaces, so count
		// from its closing parenthesis.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if nice := fields[16]; nice != "19" {
			t.Errorf("helper thread %s runs at nice %s, want 19", task.Name(), nice)
		}
		if policy := fields[38]; policy != strconv.Itoa(schedIdle) {
			t.Errorf("helper thread %s has scheduling policy %s, want SCHED_IDLE (%d)", task.Name(), policy, schedIdle)
		}
	}
}

func TestIdentityProcessFallsBack(t *testing.T) {
	f := fixtures(t)
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) *IdentityProcess
	}{
		{"no such program", func(t *testing.T) *IdentityProcess {
			var logs strings.Builder
			p := StartIdentityProcess(slog.New(slog.NewTextHandler(&logs, nil)), "/nonexistent/cloudhsm-local-helper")
			t.Cleanup(p.Close)
			// The warning the cross-client suite looks for in server logs.
			if !strings.Contains(logs.String(), HelperGoneMessage) {
				t.Errorf("no %q warning logged: %q", HelperGoneMessage, logs.String())
			}
			return p
		}},
		{"garbage answer", func(t *testing.T) *IdentityProcess { return patientHelper(t, "garbage") }},
		{"identity from another authority", func(t *testing.T) *IdentityProcess { return patientHelper(t, "forged") }},
		{"helper dies", func(t *testing.T) *IdentityProcess { return patientHelper(t, "one-then-exit") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.start(t)
			for i := range 2 {
				id, csr, err := p.NewIdentity(f.auth, IdentityRequest{HsmID: "hsm-fallback" + strconv.Itoa(i), Now: f.now, CSR: true})
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				checkHelperIdentity(t, f, id, csr, true)
			}
			if p.Err() == nil {
				t.Error("Err is nil although the helper failed")
			}
		})
	}
}

func TestIdentityProcessLateHelper(t *testing.T) {
	f := fixtures(t)
	t.Run("silent", func(t *testing.T) {
		p := startHelper(t, "silent")
		p.timeout = 300 * time.Millisecond
		id, csr, err := p.NewIdentity(f.auth, IdentityRequest{HsmID: "hsm-silent", Now: f.now, CSR: true})
		if err != nil {
			t.Fatal(err)
		}
		checkHelperIdentity(t, f, id, csr, true)
		if p.inline != 1 {
			t.Errorf("%d identities made in process, want 1", p.inline)
		}
		if err := p.Err(); err != nil {
			t.Errorf("a late helper was dropped: %v", err)
		}
	})
	t.Run("late answer dropped", func(t *testing.T) {
		// A helper in this test's hands, over pipes: it answers the first
		// request only when the test says so, the others at once.
		reqR, reqW := io.Pipe()
		ansR, ansW := io.Pipe()
		p := newIdentityProcess(nil, nil, reqW, ansR)
		t.Cleanup(p.Close)
		release := make(chan struct{})
		helperDone := make(chan error, 1)
		go func() {
			defer ansW.Close()
			for n := 0; ; n++ {
				var req helperRequest
				if err := readFrame(reqR, &req); err != nil {
					helperDone <- nil
					return
				}
				if n == 0 {
					<-release
				}
				id, csr, err := makeIdentity(f.auth, req.Request, generateKey)
				if err == nil {
					err = writeFrame(ansW, helperAnswer{Seq: req.Seq, Identity: id, CSR: csr})
				}
				if err != nil {
					helperDone <- err
					return
				}
			}
		}()
		ask := func(name string) *HSMIdentity {
			t.Helper()
			id, csr, err := p.NewIdentity(f.auth, IdentityRequest{HsmID: name, Now: f.now, CSR: true})
			if err != nil {
				t.Fatal(err)
			}
			checkHelperIdentity(t, f, id, csr, true)
			if id.Serial != hardwareSerial(name) {
				t.Errorf("%s got the identity of another HSM (serial %s)", name, id.Serial)
			}
			return id
		}
		p.timeout = 10 * time.Millisecond
		ask("hsm-late1") // the helper holds it: made here after the timeout
		ask("hsm-late2") // the helper still owes an answer: made here at once
		if p.inline != 2 {
			t.Fatalf("%d identities made in process, want 2", p.inline)
		}
		close(release) // the late answer comes, and is dropped
		deadline := time.Now().Add(30 * time.Second)
		for owed := 1; owed > 0; runtime.Gosched() {
			p.mu.Lock()
			owed = p.owed
			p.mu.Unlock()
			if time.Now().After(deadline) {
				t.Fatal("the late answer never arrived")
			}
		}
		p.timeout = time.Minute
		ask("hsm-late3") // answered by the helper
		if p.inline != 2 {
			t.Errorf("%d identities made in process, want 2 (the third came from the helper)", p.inline)
		}
		if err := p.Err(); err != nil {
			t.Errorf("helper dropped: %v", err)
		}
		p.Close()
		if err := <-helperDone; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stopped reading", func(t *testing.T) {
		// A helper whose stdin pipe is full: the write gives up at the
		// timeout, and the helper is no longer used.
		in, out, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.Close() })
		chunk := make([]byte, 4096)
		for {
			_ = out.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := out.Write(chunk); err != nil {
				break // full
			}
		}
		ansR, ansW := io.Pipe()
		p := newIdentityProcess(nil, nil, out, ansR)
		t.Cleanup(p.Close)
		// Runs before p.Close: the fake helper's stdout ends as a killed
		// helper's would.
		t.Cleanup(func() { ansW.Close() })
		p.timeout = 50 * time.Millisecond
		id, csr, err := p.NewIdentity(f.auth, IdentityRequest{HsmID: "hsm-full", Now: f.now, CSR: true})
		if err != nil {
			t.Fatal(err)
		}
		checkHelperIdentity(t, f, id, csr, true)
		if p.Err() == nil {
			t.Error("a helper that stopped reading is still used")
		}
	})
}

func TestIdentityProcessRefusal(t *testing.T) {
	f := fixtures(t)
	p := startHelper(t, "serve")
	// A negative partition is refused by the helper: an error for this
	// request, and the helper stays in use.
	if _, _, err := p.NewIdentity(f.auth, IdentityRequest{HsmID: "hsm-bad", Now: f.now, Partition: -1}); err == nil {
		t.Fatal("negative partition accepted")
	}
	if err := p.Err(); err != nil {
		t.Fatalf("helper dropped after a refused request: %v", err)
	}
	if _, _, err := p.NewIdentity(f.auth, IdentityRequest{HsmID: "hsm-good", Now: f.now}); err != nil {
		t.Fatal(err)
	}
}

func TestReadFrameRefuses(t *testing.T) {
	frame := func(n uint32, body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), body...)
	}
	for name, in := range map[string][]byte{
		"empty":       nil,
		"zero length": frame(0, nil),
		"too long":    frame(maxFrame+1, nil),
		"short body":  frame(100, []byte("{}")),
		"not JSON":    frame(3, []byte("abc")),
	} {
		var ans helperAnswer
		if err := readFrame(bytes.NewReader(in), &ans); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
