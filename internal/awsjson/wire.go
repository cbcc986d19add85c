// Package awsjson owns the AWS JSON 1.1 wire protocol of the CloudHSM v2
// endpoint: routing by X-Amz-Target through one operation table, reading
// request bodies within a size limit, encoding responses, the error envelope
// and its single code-to-status table, request ids, panic recovery, and the
// one log line written per request.
package awsjson

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// TargetPrefix is the X-Amz-Target prefix of the CloudHSM v2 API.
const TargetPrefix = "BaldrApiService."

// ContentType is the content type of every response.
const ContentType = "application/x-amz-json-1.1"

// requestIDHeader is AWS's x-amzn-RequestId in net/http's canonical form
// (header names are case-insensitive), so that setting it costs no
// canonicalization.
const requestIDHeader = "X-Amzn-Requestid"

// contentTypeValue is the Content-Type header value of every response,
// shared: net/http only reads header values.
var contentTypeValue = []string{ContentType}

// DefaultMaxBodyBytes bounds a request body. The largest legal CloudHSM
// request (InitializeCluster with two 20,000-character certificates) is far
// below it.
const DefaultMaxBodyBytes = 1 << 20

// Request is one decoded call, handed to an operation handler.
type Request struct {
	Operation string
	RequestID string
	Body      []byte
	HTTP      *http.Request
	// Caller is whatever the Authenticate hook returned (tenant, identity).
	Caller any

	w http.ResponseWriter
}

// writeAllowance is how long a response may take to write once a request
// that was made to wait on purpose (an injected latency) goes on.
const writeAllowance = 30 * time.Second

// Delay tells the server that the request will wait d on purpose before
// it is answered, so that the connection's write deadline (the server's
// write timeout) does not cut the answer off: it moves to d plus a write
// allowance from now.
func (r *Request) Delay(d time.Duration) {
	if r.w != nil {
		_ = http.NewResponseController(r.w).SetWriteDeadline(time.Now().Add(d + writeAllowance))
	}
}

// Handler runs one operation. It returns a value to encode as the JSON
// response (nil means "{}") or an error (an *Error is sent as is; any other
// error becomes CloudHsmInternalFailureException).
type Handler func(ctx context.Context, req *Request) (any, error)

// PooledBody is a response body whose memory the wire hands back (Release)
// once it is written, so hot paths can reuse their buffers.
type PooledBody interface {
	Bytes() []byte
	Release()
}

// Operations is the routing table: operation name to handler.
type Operations map[string]Handler

// Hooks lets the embedding server plug in authentication, fault injection and
// metrics without the wire knowing about them. Every field is optional.
type Hooks struct {
	// Authenticate identifies the caller; an error refuses the request.
	Authenticate func(r *http.Request, body []byte) (caller any, err error)
	// Before runs after authentication and before the handler; a non-nil
	// error is answered instead of calling the handler (fault injection).
	Before func(ctx context.Context, req *Request) error
	// Observe is told about every finished request.
	Observe func(op string, status int, code string, d time.Duration)
	// LogAttrs appends attributes of the caller to the request's log line.
	LogAttrs func(caller any, attrs []slog.Attr) []slog.Attr
	// Record is told about every finished call with its bodies (the
	// request log). The slices are valid only during the call: copy what
	// is kept.
	Record func(x Exchange)
}

// Exchange is one finished call, as the Record hook sees it. It carries no
// header but the user agent: the Authorization header (the signature) and
// the query (a presigned request's signature) are never handed out.
type Exchange struct {
	Start     time.Time
	Duration  time.Duration
	RequestID string
	// Operation is the operation called ("" when the request named none
	// that exists); Target is the X-Amz-Target header as sent.
	Operation, Target string
	// Caller is what Authenticate returned (nil when it refused the call
	// or never ran).
	Caller    any
	Status    int
	Code      string // the error code, "" on success
	Request   []byte // the body as read; nil when it was not read
	Response  []byte // the body as written
	UserAgent string
	// InProcess marks a call made through Invoke rather than over HTTP.
	InProcess bool
}

// Server serves the AWS JSON 1.1 protocol over HTTP.
type Server struct {
	ops          Operations
	hooks        Hooks
	log          *slog.Logger
	maxBodyBytes int64
}

// NewServer returns a wire server routing through ops.
func NewServer(ops Operations, hooks Hooks, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{ops: ops, hooks: hooks, log: log, maxBodyBytes: DefaultMaxBodyBytes}
}

// NewRequestID returns a random request id shaped like AWS's (a UUID v4).
func NewRequestID() string {
	// Request ids must be unique, not secret: the runtime's per-processor
	// ChaCha8 generator (seeded by the system) is enough, and unlike
	// crypto/rand it needs no system call.
	var b [16]byte
	binary.LittleEndian.PutUint64(b[0:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:16], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

type requestLog struct {
	op, code string
	status   int
	caller   any
	cause    error
	// reqBody and respBody are the bodies, kept for the Record hook;
	// release hands a pooled response body back once it has seen it.
	reqBody, respBody []byte
	release           func()
	inProcess         bool
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := NewRequestID()
	w.Header()[requestIDHeader] = []string{reqID}
	rl := &requestLog{}
	defer func() {
		if p := recover(); p != nil {
			rl.cause = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			s.writeError(w, rl, &Error{Code: CodeInternalFailure, Message: "The request processing has failed because of an unknown error, exception or failure."})
		}
		s.finish(r.Context(), r, start, reqID, rl)
	}()
	s.serve(w, r, reqID, rl)
}

// finish tells the hooks about a finished call and writes its log line.
func (s *Server) finish(ctx context.Context, r *http.Request, start time.Time, reqID string, rl *requestLog) {
	d := time.Since(start)
	if s.hooks.Observe != nil {
		s.hooks.Observe(rl.op, rl.status, rl.code, d)
	}
	if s.hooks.Record != nil {
		x := Exchange{Start: start, Duration: d, RequestID: reqID, Operation: rl.op, Caller: rl.caller,
			Status: rl.status, Code: rl.code, Request: rl.reqBody, Response: rl.respBody, InProcess: rl.inProcess}
		if r != nil {
			x.Target, x.UserAgent = r.Header.Get("X-Amz-Target"), r.Header.Get("User-Agent")
		}
		s.hooks.Record(x)
	}
	if rl.release != nil {
		rl.release()
	}
	level := slog.LevelInfo
	if rl.cause != nil {
		level = slog.LevelError
	}
	if !s.log.Enabled(ctx, level) {
		return
	}
	var buf [9]slog.Attr
	attrs := append(buf[:0],
		slog.String("request_id", reqID),
		slog.String("operation", rl.op),
		slog.Int("status", rl.status),
		slog.Duration("duration", d),
	)
	if rl.code != "" {
		attrs = append(attrs, slog.String("error_code", rl.code))
	}
	if rl.inProcess {
		attrs = append(attrs, slog.Bool("in_process", true))
	}
	if s.hooks.LogAttrs != nil && rl.caller != nil {
		attrs = s.hooks.LogAttrs(rl.caller, attrs)
	}
	if rl.cause != nil {
		attrs = append(attrs, slog.String("cause", rl.cause.Error()))
	}
	// The record is handed to the handler directly: Logger.LogAttrs
	// would also walk the stack for the caller's program counter, which
	// our handler does not print, and which would only ever name this
	// function (a library user's handler with AddSource gets no source).
	rec := slog.NewRecord(start.Add(d), level, "request", 0)
	rec.AddAttrs(attrs...)
	_ = s.log.Handler().Handle(ctx, rec)
}

// Invoke runs operation op for caller with the JSON body in process, as
// the wire runs a request once it has read and authenticated it: the
// Before hook, the operation's handler and the error envelope, then
// Observe, Record and the log line. It returns the status and the body an
// AWS client would have received, so that callers beside the wire (the
// console) act through exactly the API's rules and show its errors.
func (s *Server) Invoke(ctx context.Context, op string, caller any, body []byte) (status int, response []byte) {
	start := time.Now()
	reqID := NewRequestID()
	w := &memoryWriter{header: http.Header{}}
	rl := &requestLog{caller: caller, inProcess: true}
	defer func() {
		if p := recover(); p != nil {
			rl.cause = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
			w.body = w.body[:0]
			s.writeError(w, rl, &Error{Code: CodeInternalFailure, Message: "The request processing has failed because of an unknown error, exception or failure."})
			status, response = w.code, w.body
		}
		s.finish(ctx, nil, start, reqID, rl)
	}()
	handler, ok := s.ops[op]
	if !ok {
		s.writeError(w, rl, Errorf(CodeUnknownOperation, "Unknown operation %q.", truncate(op, 128)))
		return w.code, w.body
	}
	rl.op, rl.reqBody = op, body
	s.run(ctx, w, rl, handler, &Request{Operation: op, RequestID: reqID, Body: body, Caller: caller})
	return w.code, w.body
}

// memoryWriter is the response writer of Invoke: it keeps the body.
type memoryWriter struct {
	header http.Header
	code   int
	body   []byte
}

func (m *memoryWriter) Header() http.Header { return m.header }

func (m *memoryWriter) WriteHeader(code int) {
	if m.code == 0 {
		m.code = code
	}
}

func (m *memoryWriter) Write(b []byte) (int, error) {
	m.WriteHeader(http.StatusOK)
	m.body = append(m.body, b...)
	return len(b), nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, reqID string, rl *requestLog) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.writeError(w, rl, Errorf(CodeMethodNotAllowed, "Method %s is not allowed: the CloudHSM v2 API accepts only POST /.", r.Method))
		return
	}
	if r.URL.Path != "/" {
		s.writeError(w, rl, Errorf(CodeUnknownOperation, "No operation at path %q: the CloudHSM v2 API accepts only POST /.", r.URL.Path))
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, TargetPrefix)
	if target == "" {
		s.writeError(w, rl, Errorf(CodeUnknownOperation, "Missing X-Amz-Target header: expected %s<Operation>.", TargetPrefix))
		return
	}
	if !ok || op == "" {
		s.writeError(w, rl, Errorf(CodeUnknownOperation, "Unknown X-Amz-Target %q: expected %s<Operation>.", truncate(target, 128), TargetPrefix))
		return
	}
	handler, ok := s.ops[op]
	if !ok {
		s.writeError(w, rl, Errorf(CodeUnknownOperation, "Unknown operation %q.", truncate(op, 128)))
		return
	}
	rl.op = op
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != ContentType {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !acceptedMediaType(mt) {
			s.writeError(w, rl, Errorf(CodeUnsupportedMediaType, "Content-Type %q is not supported: send %s.", truncate(ct, 128), ContentType))
			return
		}
	}
	if r.ContentLength > s.maxBodyBytes {
		s.writeError(w, rl, Errorf(CodeRequestTooLarge, "Request body of %d bytes exceeds the limit of %d bytes.", r.ContentLength, s.maxBodyBytes))
		return
	}
	body, err := readBody(w, r, s.maxBodyBytes)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeError(w, rl, Errorf(CodeRequestTooLarge, "Request body exceeds the limit of %d bytes.", s.maxBodyBytes))
			return
		}
		rl.cause = fmt.Errorf("read body: %w", err)
		s.writeError(w, rl, Errorf(CodeSerialization, "Could not read the whole request body: the body ended early or was not sent in time."))
		return
	}
	rl.reqBody = body
	req := &Request{Operation: op, RequestID: reqID, Body: body, HTTP: r, w: w}
	if s.hooks.Authenticate != nil {
		caller, err := s.hooks.Authenticate(r, body)
		if err != nil {
			s.fail(w, rl, err)
			return
		}
		req.Caller = caller
		rl.caller = caller
	}
	s.run(r.Context(), w, rl, handler, req)
}

// run runs an authenticated request: the Before hook, then the handler.
func (s *Server) run(ctx context.Context, w http.ResponseWriter, rl *requestLog, handler Handler, req *Request) {
	if s.hooks.Before != nil {
		if err := s.hooks.Before(ctx, req); err != nil {
			s.fail(w, rl, err)
			return
		}
	}
	out, err := handler(ctx, req)
	if err != nil {
		s.fail(w, rl, err)
		return
	}
	s.writeJSON(w, rl, http.StatusOK, out)
}

// exactBodyBytes is the largest announced body read into a buffer of its
// announced size before any of it arrives; larger ones grow as they come,
// so that slow clients announcing big bodies cannot pin memory.
const exactBodyBytes = 64 << 10

// readBody reads the whole request body, at most limit bytes. A small body
// whose length was announced is read into one buffer of that size.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= min(limit, exactBodyBytes) {
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

func acceptedMediaType(mt string) bool {
	switch mt {
	case "application/x-amz-json-1.1", "application/x-amz-json-1.0", "application/json":
		return true
	}
	return false
}

func (s *Server) fail(w http.ResponseWriter, rl *requestLog, err error) {
	e := AsError(err)
	var direct *Error
	if !errors.As(err, &direct) || e.Code == CodeInternalFailure {
		rl.cause = err
	}
	s.writeError(w, rl, e)
}

var emptyObject = []byte("{}")

func (s *Server) writeJSON(w http.ResponseWriter, rl *requestLog, status int, v any) {
	var body []byte
	switch v := v.(type) {
	case nil:
		body = emptyObject
	case PooledBody:
		body = v.Bytes()
		// Released once the Record hook has seen it (finish).
		rl.release = v.Release
	case json.RawMessage:
		body = v
	case []byte:
		body = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			rl.cause = fmt.Errorf("encode response: %w", err)
			s.writeError(w, rl, &Error{Code: CodeInternalFailure, Message: "The request processing has failed because of an unknown error, exception or failure."})
			return
		}
		body = b
	}
	rl.status = status
	h := w.Header()
	h["Content-Type"] = contentTypeValue
	// With its length announced, a body larger than net/http's buffers is
	// sent as is, not chunked: one system call fewer per response (the
	// chunked encoding's last chunk is a write of its own).
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write(body)
	rl.respBody = body
}

type errorBody struct {
	Type    string `json:"__type"`
	Message string `json:"Message"`
}

func (s *Server) writeError(w http.ResponseWriter, rl *requestLog, e *Error) {
	status := Status(e.Code)
	rl.status = status
	rl.code = e.Code
	b, _ := json.Marshal(errorBody{Type: e.Code, Message: e.Message})
	h := w.Header()
	h["Content-Type"] = []string{ContentType}
	h.Set("x-amzn-ErrorType", e.Code)
	w.WriteHeader(status)
	_, _ = w.Write(b)
	rl.respBody = b
}

// WriteError writes an error envelope outside of an operation (used by
// middleware such as connection limits).
func WriteError(w http.ResponseWriter, e *Error) {
	b, _ := json.Marshal(errorBody{Type: e.Code, Message: e.Message})
	h := w.Header()
	if h.Get("x-amzn-RequestId") == "" {
		h.Set("x-amzn-RequestId", NewRequestID())
	}
	h["Content-Type"] = []string{ContentType}
	h.Set("x-amzn-ErrorType", e.Code)
	w.WriteHeader(Status(e.Code))
	_, _ = w.Write(b)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
