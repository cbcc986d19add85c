package api

import (
	"errors"
	"fmt"

	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/model"
)

// codeByKind is the one table that maps domain refusals to AWS error codes.
var codeByKind = map[cloudhsm.ErrorKind]string{
	cloudhsm.KindInvalidRequest: awsjson.CodeInvalidRequest,
	cloudhsm.KindNotFound:       awsjson.CodeResourceNotFound,
	cloudhsm.KindLimitExceeded:  awsjson.CodeResourceLimitExceeded,
	cloudhsm.KindTag:            awsjson.CodeTag,
	cloudhsm.KindService:        awsjson.CodeService,
	cloudhsm.KindAccessDenied:   awsjson.CodeAccessDenied,
}

// wireError turns any error into what the client sees.
func wireError(op string, err error) error {
	var de *cloudhsm.Error
	if errors.As(err, &de) {
		code, ok := codeByKind[de.Kind]
		if !ok {
			code = awsjson.CodeInternalFailure
		}
		return &awsjson.Error{Code: code, Message: de.Message}
	}
	var se *model.SerializationError
	if errors.As(err, &se) {
		return &awsjson.Error{Code: awsjson.CodeSerialization, Message: se.Message}
	}
	var ve *model.ValidationError
	if errors.As(err, &ve) {
		return &awsjson.Error{Code: awsjson.CodeInvalidRequest, Message: ve.Error()}
	}
	var ae *awsjson.Error
	if errors.As(err, &ae) {
		return ae
	}
	// Unexpected: keep the cause for the log; the wire says internal failure.
	return fmt.Errorf("%s: %w", op, err)
}

func invalid(format string, args ...any) error {
	return awsjson.Errorf(awsjson.CodeInvalidRequest, format, args...)
}
