package cloudhsm

import "fmt"

// ErrorKind classifies domain errors; the API maps each kind to an AWS code.
type ErrorKind int

// Error kinds.
const (
	KindInvalidRequest ErrorKind = iota
	KindNotFound
	KindLimitExceeded
	KindTag
	KindService
	KindAccessDenied
)

// Error is a refusal by the domain, with a message for the user.
type Error struct {
	Kind    ErrorKind
	Message string
}

func (e *Error) Error() string { return e.Message }

func errf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}
