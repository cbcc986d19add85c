// Package sigv4 owns AWS Signature Version 4 on the server side: reading the
// credential scope (access key id, date, region, service) from a request's
// Authorization header or presigned query, and, in strict mode, verifying the
// signature against known secrets.
package sigv4

import (
	"errors"
	"net/http"
	"strings"
)

// Algorithm is the only signing algorithm accepted.
const Algorithm = "AWS4-HMAC-SHA256"

// ErrNoCredentials means the request carries no SigV4 authentication at all.
var ErrNoCredentials = errors.New("sigv4: request is not signed")

// Scope is the credential scope of a signed request.
type Scope struct {
	AccessKeyID string
	Date        string // yyyymmdd
	Region      string
	Service     string
}

// ParseScope reads the credential scope from the Authorization header, or
// from the X-Amz-Credential query parameter of a presigned request. It does
// not verify anything.
func ParseScope(r *http.Request) (Scope, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		a, err := ParseAuthorization(auth)
		if err != nil {
			return Scope{}, err
		}
		return a.Scope, nil
	}
	if cred := r.URL.Query().Get("X-Amz-Credential"); cred != "" {
		return parseCredential(cred)
	}
	return Scope{}, ErrNoCredentials
}

// Authorization is a parsed SigV4 Authorization header.
type Authorization struct {
	Scope         Scope
	SignedHeaders []string
	Signature     string
}

// MalformedError describes an Authorization header that cannot be parsed.
type MalformedError struct{ Reason string }

func (e *MalformedError) Error() string { return e.Reason }

// ParseAuthorization parses "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
func ParseAuthorization(h string) (Authorization, error) {
	alg, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || alg != Algorithm {
		return Authorization{}, &MalformedError{Reason: "Authorization header requires the " + Algorithm + " algorithm."}
	}
	var a Authorization
	var haveCred, haveSigned, haveSig bool
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Authorization{}, &MalformedError{Reason: "Authorization header element '" + strings.TrimSpace(part) + "' is not a key=value pair."}
		}
		switch k {
		case "Credential":
			s, err := parseCredential(v)
			if err != nil {
				return Authorization{}, err
			}
			a.Scope, haveCred = s, true
		case "SignedHeaders":
			a.SignedHeaders, haveSigned = strings.Split(v, ";"), true
		case "Signature":
			a.Signature, haveSig = v, true
		}
	}
	var missing []string
	if !haveCred {
		missing = append(missing, "'Credential'")
	}
	if !haveSigned {
		missing = append(missing, "'SignedHeaders'")
	}
	if !haveSig {
		missing = append(missing, "'Signature'")
	}
	if len(missing) > 0 {
		return Authorization{}, &MalformedError{Reason: "Authorization header requires " + strings.Join(missing, ", ") + " parameter(s)."}
	}
	return a, nil
}

func parseCredential(v string) (Scope, error) {
	parts := strings.Split(v, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" {
		return Scope{}, &MalformedError{Reason: "Credential should be scoped to a valid region, e.g. 'AKID/20260101/us-east-1/cloudhsm/aws4_request', got '" + v + "'."}
	}
	return Scope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}, nil
}
