package server_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// TestLimitListener: Accept waits while every place is taken; a
// connection's Release or Close frees its place (once); Close ends a
// waiting Accept, so that a saturated server can still shut down.
func TestLimitListener(t *testing.T) {
	t.Parallel()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := server.LimitListener(raw, 1)
	accepted := make(chan net.Conn, 4)
	errs := make(chan error, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				errs <- err
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	first := <-accepted
	dial() // queued in the backlog: no place
	select {
	case <-accepted:
		t.Fatal("a second connection was accepted with a cap of one")
	case <-time.After(100 * time.Millisecond):
	}
	first.(server.Releaser).Release() // the console takes it over for a stream
	second := <-accepted
	first.Close() // released already: frees nothing more
	dial()
	select {
	case <-accepted:
		t.Fatal("closing a released connection freed a second place")
	case <-time.After(100 * time.Millisecond):
	}
	second.Close()
	<-accepted
	// All places taken again: Close must end the waiting Accept.
	dial()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waits for a place after Close")
	}
}
