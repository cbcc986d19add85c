// Package sigv4 owns AWS Signature Version 4 on the server side: reading the
// credential scope (access key id, date, region, service) from a request's
// Authorization header or presigned query, and, in strict mode, verifying the
// signature against known secrets (see Verifier).
package sigv4

import (
	"errors"
	"net/http"
	"strings"
)

// Algorithm is the only signing algorithm accepted.
const Algorithm = "AWS4-HMAC-SHA256"

// Terminator is the last element of every SigV4 credential scope.
const Terminator = "aws4_request"

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
		if sc, ok := quickScope(auth); ok {
			return sc, nil
		}
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

// quickScope reads the credential scope of a well-formed header the way
// every SDK writes it ("AWS4-HMAC-SHA256 Credential=K/D/R/S/aws4_request,
// SignedHeaders=..., Signature=..."), without splitting the whole header:
// this runs on every request in permissive mode. Anything else is left to
// ParseAuthorization and its exact error messages.
func quickScope(h string) (Scope, bool) {
	rest, ok := strings.CutPrefix(h, Algorithm+" Credential=")
	if !ok {
		return Scope{}, false
	}
	end := strings.IndexByte(rest, ',')
	if end < 0 {
		return Scope{}, false
	}
	cred, tail := rest[:end], rest[end+1:]
	// The tail must be exactly " SignedHeaders=<list>, Signature=<hex>"
	// (the space after each comma optional).
	tail, ok = strings.CutPrefix(strings.TrimPrefix(tail, " "), "SignedHeaders=")
	if !ok {
		return Scope{}, false
	}
	comma := strings.IndexByte(tail, ',')
	if comma <= 0 || !plainToken(tail[:comma]) {
		return Scope{}, false
	}
	sig, ok := strings.CutPrefix(strings.TrimPrefix(tail[comma+1:], " "), "Signature=")
	if !ok || sig == "" || strings.Trim(sig, "0123456789abcdef") != "" {
		return Scope{}, false
	}
	if !plainToken(cred) {
		return Scope{}, false
	}
	var parts [5]string
	for i := 0; i < 4; i++ {
		j := strings.IndexByte(cred, '/')
		if j <= 0 {
			return Scope{}, false
		}
		parts[i], cred = cred[:j], cred[j+1:]
	}
	if cred != Terminator {
		return Scope{}, false
	}
	return Scope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}, true
}

// plainToken reports whether s has only printable, non-space ASCII other
// than '=' and ','.
func plainToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '=' || c == ',' {
			return false
		}
	}
	return true
}

// Authorization is a parsed SigV4 Authorization header.
type Authorization struct {
	Scope         Scope
	SignedHeaders []string
	Signature     string
}

// MalformedError describes an Authorization header that cannot be parsed.
// Reason is worded as AWS words the matching IncompleteSignatureException.
type MalformedError struct{ Reason string }

func (e *MalformedError) Error() string { return e.Reason }

// ParseAuthorization parses "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
// Components may be separated by commas and/or white space, as AWS accepts.
// It checks, in AWS's order, that every component is a key=value pair, that
// Credential, Signature and SignedHeaders are present, that the algorithm is
// AWS4-HMAC-SHA256 and that the credential has five elements ending in
// aws4_request. It does not look at dates, keys or signatures.
func ParseAuthorization(h string) (Authorization, error) {
	f, merr := splitAuthorization(h)
	if merr != nil {
		return Authorization{}, merr
	}
	if missing := f.missing(); len(missing) > 0 {
		return Authorization{}, &MalformedError{Reason: strings.Join(missing, " ") + " Authorization=" + h}
	}
	if f.algorithm != Algorithm {
		return Authorization{}, &MalformedError{Reason: unsupportedAlgorithm(f.algorithm)}
	}
	s, err := parseCredential(f.credential)
	if err != nil {
		return Authorization{}, err
	}
	return Authorization{Scope: s, SignedHeaders: strings.Split(f.signedHeaders, ";"), Signature: f.signature}, nil
}

// authFields are the raw components of an Authorization header.
type authFields struct {
	algorithm                            string
	credential, signedHeaders, signature string
	haveCred, haveSigned, haveSig        bool
}

// missing lists, in AWS's order and wording, the components that are absent.
// An empty Credential or Signature counts as absent; an empty SignedHeaders
// does not (it fails later, on the Host check), as with AWS.
func (f *authFields) missing() []string {
	var m []string
	if !f.haveCred || f.credential == "" {
		m = append(m, "Authorization header requires 'Credential' parameter.")
	}
	if !f.haveSig || f.signature == "" {
		m = append(m, "Authorization header requires 'Signature' parameter.")
	}
	if !f.haveSigned {
		m = append(m, "Authorization header requires 'SignedHeaders' parameter.")
	}
	return m
}

func isAuthSep(r rune) bool { return r == ',' || r == ' ' || r == '\t' }

// splitAuthorization splits the header into the algorithm (the first word)
// and its key=value components. A later duplicate of a key wins, as with AWS.
// Unknown keys are ignored.
func splitAuthorization(h string) (authFields, *MalformedError) {
	var f authFields
	alg, rest := strings.TrimSpace(h), ""
	if i := strings.IndexAny(alg, " \t"); i >= 0 {
		alg, rest = alg[:i], alg[i+1:]
	}
	f.algorithm = alg
	for _, part := range strings.FieldsFunc(rest, isAuthSep) {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return authFields{}, &MalformedError{Reason: "'" + part + "' not a valid key=value pair (missing equal-sign) in Authorization header: '" + h + "'."}
		}
		switch k {
		case "Credential":
			f.credential, f.haveCred = v, true
		case "SignedHeaders":
			f.signedHeaders, f.haveSigned = v, true
		case "Signature":
			f.signature, f.haveSig = v, true
		}
	}
	return f, nil
}

func unsupportedAlgorithm(alg string) string {
	return "Unsupported AWS 'algorithm': '" + alg + "' (only " + Algorithm + " for now). "
}

// credentialParts splits a credential into its five elements. Trailing
// slashes are ignored, as AWS does.
func credentialParts(v string) ([]string, *MalformedError) {
	parts := strings.Split(strings.TrimRight(v, "/"), "/")
	if len(parts) != 5 {
		return nil, &MalformedError{Reason: "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '" + v + "'"}
	}
	return parts, nil
}

// parseCredential is the permissive reading used by ParseScope: five
// elements, the last of which must be aws4_request.
func parseCredential(v string) (Scope, error) {
	parts, merr := credentialParts(v)
	if merr != nil {
		return Scope{}, merr
	}
	if parts[4] != Terminator {
		return Scope{}, &MalformedError{Reason: "Credential should be scoped with a valid terminator: '" + Terminator + "', not '" + parts[4] + "'. "}
	}
	return Scope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}, nil
}
