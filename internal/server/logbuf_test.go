package server

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

func TestLogWriterKeepsWholeLines(t *testing.T) {
	var out testkit.LockedBuffer
	l := NewLogWriter(&out, time.Millisecond)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				_, _ = l.Write([]byte(strings.Repeat("x", 100) + "\n"))
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4000 {
		t.Fatalf("%d lines, want 4000", len(lines))
	}
	for _, ln := range lines {
		if len(ln) != 100 {
			t.Fatalf("torn line of %d bytes", len(ln))
		}
	}
}
