package awsjson

import (
	"errors"
	"fmt"
	"net/http"
)

// The error codes the wire can carry. The CloudHsm* codes are the service
// model's exception shapes; the others are AWS's protocol-level codes.
const (
	CodeAccessDenied          = "CloudHsmAccessDeniedException"
	CodeInternalFailure       = "CloudHsmInternalFailureException"
	CodeInvalidRequest        = "CloudHsmInvalidRequestException"
	CodeResourceLimitExceeded = "CloudHsmResourceLimitExceededException"
	CodeResourceNotFound      = "CloudHsmResourceNotFoundException"
	CodeService               = "CloudHsmServiceException"
	CodeTag                   = "CloudHsmTagException"

	CodeUnknownOperation        = "UnknownOperationException"
	CodeSerialization           = "SerializationException"
	CodeRequestTooLarge         = "RequestEntityTooLargeException"
	CodeThrottling              = "ThrottlingException"
	CodeMissingAuthToken        = "MissingAuthenticationTokenException"
	CodeUnrecognizedClient      = "UnrecognizedClientException"
	CodeInvalidSignature        = "InvalidSignatureException"
	CodeIncompleteSignature     = "IncompleteSignatureException"
	CodeUnsupportedMediaType    = "UnsupportedMediaTypeException"
	CodeMethodNotAllowed        = "MethodNotAllowedException"
	CodeServiceUnavailableFault = "ServiceUnavailableException"
	CodeAccessDeniedAuth        = "AccessDeniedException"
)

// statusByCode is the one table that maps every error code to its HTTP
// status. A code missing from it is a programming error and is answered as
// 500.
var statusByCode = map[string]int{
	CodeAccessDenied:          http.StatusBadRequest,
	CodeInternalFailure:       http.StatusInternalServerError,
	CodeInvalidRequest:        http.StatusBadRequest,
	CodeResourceLimitExceeded: http.StatusBadRequest,
	CodeResourceNotFound:      http.StatusBadRequest,
	CodeService:               http.StatusBadRequest,
	CodeTag:                   http.StatusBadRequest,

	CodeUnknownOperation:        http.StatusBadRequest,
	CodeSerialization:           http.StatusBadRequest,
	CodeRequestTooLarge:         http.StatusRequestEntityTooLarge,
	CodeThrottling:              http.StatusBadRequest,
	CodeMissingAuthToken:        http.StatusForbidden,
	CodeUnrecognizedClient:      http.StatusBadRequest,
	CodeInvalidSignature:        http.StatusBadRequest,
	CodeIncompleteSignature:     http.StatusBadRequest,
	CodeUnsupportedMediaType:    http.StatusUnsupportedMediaType,
	CodeAccessDeniedAuth:        http.StatusForbidden,
	CodeMethodNotAllowed:        http.StatusMethodNotAllowed,
	CodeServiceUnavailableFault: http.StatusServiceUnavailable,
}

// Status returns the HTTP status for an error code.
func Status(code string) int {
	if s, ok := statusByCode[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Known reports whether code is in the error table.
func Known(code string) bool {
	_, ok := statusByCode[code]
	return ok
}

// Error is an error the client sees: an AWS error code and a message.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError extracts the *Error from err, or wraps an unexpected error as an
// internal failure (the cause is kept for the log, not shown to the client).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternalFailure, Message: "The request processing has failed because of an unknown error, exception or failure."}
}
