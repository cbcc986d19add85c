package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// wireConn is one keep-alive HTTP/1.1 connection that the hot loops drive
// directly: the request bytes are written from a reused buffer and the
// answer is parsed in place, so sending a request allocates nothing. A
// load generator that allocates per request (net/http's client makes some
// fifty allocations) runs its own garbage collector on the cores it shares
// with the server and adds its pauses to every latency it measures.
type wireConn struct {
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
}

func dialWire(addr string) (*wireConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &wireConn{conn: c, r: bufio.NewReaderSize(c, 64<<10), buf: make([]byte, 0, 1024)}, nil
}

// roundTrip sends r to host and reads the whole answer; it returns the
// status code and, for anything but 200, the start of the body.
func (w *wireConn) roundTrip(host string, r *request) (int, []byte, error) {
	b := append(w.buf[:0], "POST / HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: BaldrApiService."...)
	b = append(b, r.op...)
	b = append(b, "\r\nX-Amz-Date: "...)
	b = append(b, amzDate...)
	b = append(b, "\r\nAuthorization: "...)
	b = append(b, r.headers["Authorization"][0]...)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(r.body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, r.body...)
	w.buf = b
	// A server that stops answering fails the run instead of hanging it.
	if err := w.conn.SetDeadline(time.Now().Add(roundTripTimeout)); err != nil {
		return 0, nil, err
	}
	if _, err := w.conn.Write(b); err != nil {
		return 0, nil, err
	}
	return w.readAnswer()
}

var errBadAnswer = errors.New("malformed HTTP answer")

// roundTripTimeout bounds one request on a wireConn, as the net/http
// client's timeout does for the other calls.
const roundTripTimeout = 60 * time.Second

func (w *wireConn) readAnswer() (int, []byte, error) {
	line, err := w.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("%w: status line %q", errBadAnswer, line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: status line %q", errBadAnswer, line)
	}
	length, chunked := -1, false
	for {
		line, err = w.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(line) <= 2 { // the blank line
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, nil, fmt.Errorf("%w: header %q", errBadAnswer, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = atoi(value); err != nil {
				return 0, nil, fmt.Errorf("%w: Content-Length %q", errBadAnswer, value)
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
		}
	}
	var head []byte
	keep := func(n int) error {
		if status != 200 && len(head) < 300 {
			p, err := w.r.Peek(min(n, 300-len(head)))
			if err != nil {
				return err
			}
			head = append(head, p...)
		}
		_, err := w.r.Discard(n)
		return err
	}
	switch {
	case chunked:
		for {
			line, err = w.r.ReadSlice('\n')
			if err != nil {
				return 0, nil, err
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			if err != nil {
				return 0, nil, fmt.Errorf("%w: chunk size %q", errBadAnswer, line)
			}
			if err := keep(int(size)); err != nil {
				return 0, nil, err
			}
			if _, err := w.r.Discard(2); err != nil { // CRLF after the data
				return 0, nil, err
			}
			if size == 0 {
				break
			}
		}
	case length >= 0:
		if err := keep(length); err != nil {
			return 0, nil, err
		}
	default:
		return 0, nil, fmt.Errorf("%w: no length", errBadAnswer)
	}
	return status, head, nil
}

func (w *wireConn) close() { _ = w.conn.Close() }

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i]|0x20, s[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

func atoi(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}
