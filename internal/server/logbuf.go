package server

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// LogWriter buffers log lines and writes them out at least every interval,
// or sooner when the buffer fills, so that one log line per request does not
// cost one write system call per request. Each Write is one whole line (slog
// handlers write a record in one call), so lines are never interleaved.
type LogWriter struct {
	mu   sync.Mutex
	w    *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

// NewLogWriter starts flushing w's buffer every interval.
func NewLogWriter(w io.Writer, interval time.Duration) *LogWriter {
	l := &LogWriter{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				_ = l.Flush()
			}
		}
	}()
	return l
}

// Write buffers one log line.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Flush writes out what is buffered.
func (l *LogWriter) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Flush()
}

// Close stops the flusher and flushes what remains.
func (l *LogWriter) Close() error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	return l.Flush()
}
