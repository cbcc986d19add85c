package server

import (
	"net"
	"sync"
)

// LimitListener caps the number of concurrently open connections: Accept
// waits while n connections are open, so a flood of clients queues in the
// kernel's backlog instead of exhausting the process.
//
// A connection that becomes a console's live stream leaves the cap (see
// Releaser): the console's own cap (--console-streams) bounds those, so
// open consoles never take the connections that API clients need.
func LimitListener(l net.Listener, n int) net.Listener {
	if n <= 0 {
		return l
	}
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

// Releaser is implemented by the connections of a LimitListener: Release
// gives the connection's place back to the listener's cap while the
// connection stays open (the console calls it on the connections it takes
// over for live streams). Closing the connection later releases nothing
// more.
type Releaser interface {
	Release()
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	// Waiting for a place must end when the listener closes: a server's
	// Close and Shutdown wait for Serve, which waits here while every
	// place is taken.
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// Release gives the connection's place back to the listener's cap.
func (c *limitConn) Release() { c.once.Do(c.release) }

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
