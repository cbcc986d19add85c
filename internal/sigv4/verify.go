package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The error codes Verify answers with. All but AccessDeniedException are
// the protocol-level codes of AWS's JSON services.
const (
	CodeMissingAuthenticationToken = "MissingAuthenticationTokenException" // 403
	CodeIncompleteSignature        = "IncompleteSignatureException"        // 400
	CodeInvalidSignature           = "InvalidSignatureException"           // 400
	CodeUnrecognizedClient         = "UnrecognizedClientException"         // 400
	// CodeAccessDenied is answered (403, "Request has expired.") for a
	// presigned request used after X-Amz-Date + X-Amz-Expires; see Verify.
	CodeAccessDenied = "AccessDeniedException"
)

// Defaults of the Verifier fields.
const (
	DefaultService = "cloudhsm"
	DefaultMaxSkew = 15 * time.Minute
)

// MaxPresignExpires is the largest X-Amz-Expires accepted (seven days).
const MaxPresignExpires = 604800

// UnsignedPayload is the payload hash a presigned request may be signed with.
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// TimeFormat is the ISO-8601 basic format of X-Amz-Date.
const TimeFormat = "20060102T150405Z"

// Messages shared by several checks, worded as AWS words them.
const (
	MsgMissingAuthenticationToken = "Missing Authentication Token"
	MsgUnrecognizedClient         = "The security token included in the request is invalid."
	MsgSignatureMismatch          = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	MsgHostNotSigned              = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
	MsgContentSHA256Mismatch      = "The provided 'x-amz-content-sha256' header does not match what was computed."
	MsgUnsignedPayloadInHeader    = "'x-amz-content-sha256' may be 'UNSIGNED-PAYLOAD' only in a presigned (query-string) request."
	MsgBothAuthMechanisms         = "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."
	MsgRequestExpired             = "Request has expired."
)

// AuthError is a refusal: the AWS error code, its HTTP status and message.
type AuthError struct {
	Code    string
	Status  int
	Message string
}

func (e *AuthError) Error() string { return e.Code + ": " + e.Message }

func authErr(code string, status int, msg string) *AuthError {
	return &AuthError{Code: code, Status: status, Message: msg}
}

func incomplete(msg string) *AuthError {
	return authErr(CodeIncompleteSignature, http.StatusBadRequest, msg)
}

func invalid(msg string) *AuthError {
	return authErr(CodeInvalidSignature, http.StatusBadRequest, msg)
}

// Verifier checks SigV4 signatures strictly, as an AWS JSON-protocol service
// does. The zero values of Service, Now and MaxSkew mean DefaultService,
// time.Now and DefaultMaxSkew.
type Verifier struct {
	Creds   Credentials
	Service string
	Now     func() time.Time
	MaxSkew time.Duration
	// ValidRegion, when set, decides which regions a credential scope may
	// name; a refusal is an InvalidSignatureException like AWS's
	// "Credential should be scoped to a valid region". When nil, any
	// syntactically plausible region ([a-z0-9]+(-[a-z0-9]+)*) is accepted:
	// the caller picks the region, and Scope.Region reports it.
	ValidRegion func(region string) bool
}

var regionSyntax = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func (v *Verifier) service() string {
	if v.Service == "" {
		return DefaultService
	}
	return v.Service
}

func (v *Verifier) now() time.Time {
	if v.Now == nil {
		return time.Now().UTC()
	}
	return v.Now().UTC()
}

func (v *Verifier) maxSkew() time.Duration {
	if v.MaxSkew <= 0 {
		return DefaultMaxSkew
	}
	return v.MaxSkew
}

func (v *Verifier) regionOK(region string) bool {
	if v.ValidRegion != nil {
		return v.ValidRegion(region)
	}
	return regionSyntax.MatchString(region)
}

// signedRequest is what either form of authentication carries.
type signedRequest struct {
	presigned     bool
	algorithm     string
	credential    string
	signature     string
	signedHeaders string // as sent: the SignedHeaders line of the canonical request
	amzDate       string // ISO-8601 basic, as in the string to sign
	t             time.Time
}

// Verify checks r, whose body has already been read into body, and returns
// the caller's credential and scope, or an *AuthError.
//
// The checks run in the order AWS's JSON services run them, so that a
// request with several faults gets the error AWS would give:
//
//  1. query string well formed (IncompleteSignatureException);
//  2. Authorization header and X-Amz-Algorithm query both present
//     (InvalidSignatureException), or neither an Authorization header nor
//     an X-Amz-Algorithm/X-Amz-Credential/X-Amz-Signature query parameter
//     (MissingAuthenticationTokenException, 403);
//  3. header form: every component a key=value pair, Credential, Signature,
//     SignedHeaders and X-Amz-Date/Date present; query form: X-Amz-Algorithm,
//     X-Amz-Credential, X-Amz-Signature, X-Amz-SignedHeaders and X-Amz-Date
//     present (IncompleteSignatureException);
//  4. date in ISO-8601 basic format (X-Amz-Date) or an HTTP date (Date)
//     (IncompleteSignatureException);
//  5. query form only: X-Amz-Expires, when present, an integer in
//     [0, 604800] (IncompleteSignatureException) and X-Amz-Date +
//     X-Amz-Expires not past (AccessDeniedException, 403, "Request has
//     expired.");
//  6. date within MaxSkew of Now, both forms (InvalidSignatureException,
//     "Signature expired: ..." / "Signature not yet current: ...");
//  7. host among the signed headers (InvalidSignatureException);
//  8. algorithm AWS4-HMAC-SHA256 (IncompleteSignatureException);
//  9. credential of exactly five slash-delimited elements
//     (IncompleteSignatureException);
//  10. region valid, service the Verifier's, terminator aws4_request and
//     scope date equal to the request date, all problems reported in one
//     message (InvalidSignatureException);
//  11. access key id known (UnrecognizedClientException);
//  12. x-amz-content-sha256 consistent with the body
//     (InvalidSignatureException);
//  13. signature (InvalidSignatureException).
//
// Expired presigned requests: AWS's JSON (non-S3) services ignore
// X-Amz-Expires and hold presigned requests to the same fixed 15-minute
// window as header-signed ones, answering InvalidSignatureException 400
// "Signature expired: ..." when it is exceeded; Verify does the same. It is
// stricter in also honouring a shorter X-Amz-Expires, and for that case
// answers as the one AWS service that honours X-Amz-Expires (S3) does,
// under the JSON protocol's naming: AccessDeniedException, 403,
// "Request has expired.".
//
// Payload hash: a header-signed request is always verified against the hex
// SHA-256 of body; an X-Amz-Content-Sha256 header, if sent, must equal it
// (UNSIGNED-PAYLOAD is refused in that form). A presigned request is
// verified against X-Amz-Content-Sha256 (query parameter, else header) when
// given (UNSIGNED-PAYLOAD, or the body's hash), otherwise against the body's
// hash (what AWS's JSON services use, e.g. STS presigned URLs) or
// UNSIGNED-PAYLOAD (what S3-style presigners use); either is accepted.
//
// Canonicalization follows the SigV4 specification as aws-sdk-go-v2 applies
// it to non-S3 services: the escaped path is URI-encoded once more without
// normalization; query parameters are each decoded and re-encoded per RFC
// 3986 ('+' is a literal plus), sorted by name then value; headers named by
// SignedHeaders (in the order given) are looked up case-insensitively, their
// values trimmed, runs of spaces collapsed and repeated headers joined with
// commas; host comes from r.Host.
//
// X-Amz-Security-Token is not checked: StaticCredentials has no session
// tokens, and the token, when sent, is covered by the signature like any
// other signed header or query parameter.
func (v *Verifier) Verify(r *http.Request, body []byte) (Credential, Scope, error) {
	if r.URL == nil {
		r = r.Clone(r.Context())
		r.URL = &url.URL{Path: "/"}
	}
	query, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return Credential{}, Scope{}, err
	}
	now := v.now()
	sr, aerr := v.signedRequest(r, query, now)
	if aerr != nil {
		return Credential{}, Scope{}, aerr
	}
	if aerr := v.checkSkew(sr, now); aerr != nil {
		return Credential{}, Scope{}, aerr
	}
	names := strings.Split(sr.signedHeaders, ";")
	if !hostSigned(names) {
		return Credential{}, Scope{}, invalid(MsgHostNotSigned)
	}
	scope, aerr := v.scope(sr)
	if aerr != nil {
		return Credential{}, Scope{}, aerr
	}
	var cred Credential
	ok := false
	if v.Creds != nil {
		cred, ok = v.Creds.Lookup(scope.AccessKeyID)
	}
	if !ok {
		return Credential{}, Scope{}, authErr(CodeUnrecognizedClient, http.StatusBadRequest, MsgUnrecognizedClient)
	}
	payloads, aerr := payloadHashes(r, query, body, sr.presigned)
	if aerr != nil {
		return Credential{}, Scope{}, aerr
	}
	prefix := canonicalPrefix(r, query, sr, names)
	credScope := scope.Date + "/" + scope.Region + "/" + scope.Service + "/" + Terminator
	key := SigningKey(cred.SecretAccessKey, scope.Date, scope.Region, scope.Service)
	for _, p := range payloads {
		crHash := sha256.Sum256([]byte(prefix + p))
		sts := Algorithm + "\n" + sr.amzDate + "\n" + credScope + "\n" + hex.EncodeToString(crHash[:])
		want := hex.EncodeToString(hmacSHA256(key, []byte(sts)))
		if hmac.Equal([]byte(want), []byte(sr.signature)) {
			return cred, scope, nil
		}
	}
	return Credential{}, Scope{}, invalid(MsgSignatureMismatch)
}

// signedRequest picks the form of authentication r uses (steps 2 to 5 of
// Verify) and reads it.
func (v *Verifier) signedRequest(r *http.Request, query queryParams, now time.Time) (signedRequest, *AuthError) {
	authz := r.Header.Values("Authorization")
	hasHeader := len(authz) > 0 && authz[0] != ""
	_, hasAlg := query.get("X-Amz-Algorithm")
	_, hasCred := query.get("X-Amz-Credential")
	_, hasSig := query.get("X-Amz-Signature")
	switch {
	case hasHeader && hasAlg:
		return signedRequest{}, invalid(MsgBothAuthMechanisms)
	case hasHeader:
		return v.fromHeader(r, authz[0])
	case hasAlg || hasCred || hasSig:
		return v.fromQuery(query, now)
	default:
		return signedRequest{}, authErr(CodeMissingAuthenticationToken, http.StatusForbidden, MsgMissingAuthenticationToken)
	}
}

// hostSigned reports whether the signed header names include the host
// (step 7 of Verify).
func hostSigned(names []string) bool {
	for _, n := range names {
		if strings.EqualFold(n, "host") || n == ":authority" {
			return true
		}
	}
	return false
}

// scope checks the algorithm and the credential scope (steps 8 to 10 of
// Verify) and returns the scope.
func (v *Verifier) scope(sr signedRequest) (Scope, *AuthError) {
	if sr.algorithm != Algorithm {
		return Scope{}, incomplete(unsupportedAlgorithm(sr.algorithm))
	}
	parts, merr := credentialParts(sr.credential)
	if merr != nil {
		return Scope{}, incomplete(merr.Reason)
	}
	scope := Scope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}
	var msg strings.Builder
	if !v.regionOK(scope.Region) {
		msg.WriteString("Credential should be scoped to a valid region, not '" + scope.Region + "'. ")
	}
	if scope.Service != v.service() {
		msg.WriteString("Credential should be scoped to correct service: '" + v.service() + "'. ")
	}
	if parts[4] != Terminator {
		msg.WriteString("Credential should be scoped with a valid terminator: '" + Terminator + "', not '" + parts[4] + "'. ")
	}
	if scope.Date != sr.amzDate[:8] {
		msg.WriteString("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '" +
			scope.Date + "' != '" + sr.amzDate[:8] + "', from '" + sr.amzDate + "'.")
	}
	if msg.Len() > 0 {
		return Scope{}, invalid(msg.String())
	}
	return scope, nil
}

// canonicalPrefix returns everything of the canonical request but the
// payload hash, which the caller appends (there may be two to try).
func canonicalPrefix(r *http.Request, query queryParams, sr signedRequest, names []string) string {
	var cr strings.Builder
	cr.Grow(512)
	cr.WriteString(r.Method)
	cr.WriteByte('\n')
	cr.WriteString(canonicalURI(r.URL))
	cr.WriteByte('\n')
	query.writeCanonical(&cr, sr.presigned)
	cr.WriteByte('\n')
	for _, n := range names {
		cr.WriteString(n)
		cr.WriteByte(':')
		writeCanonicalValues(&cr, headerValues(r, n))
		cr.WriteByte('\n')
	}
	cr.WriteByte('\n')
	cr.WriteString(sr.signedHeaders)
	cr.WriteByte('\n')
	return cr.String()
}

// fromHeader reads the Authorization-header form.
func (v *Verifier) fromHeader(r *http.Request, h string) (signedRequest, *AuthError) {
	f, merr := splitAuthorization(h)
	if merr != nil {
		return signedRequest{}, incomplete(merr.Reason)
	}
	missing := f.missing()
	date, isAmz := firstNonEmpty(r.Header.Values("X-Amz-Date")), true
	if date == "" {
		date, isAmz = firstNonEmpty(r.Header.Values("Date")), false
	}
	if date == "" {
		missing = append(missing, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if len(missing) > 0 {
		return signedRequest{}, incomplete(strings.Join(missing, " ") + " Authorization=" + h)
	}
	t, ok := parseRequestTime(date, isAmz)
	if !ok {
		return signedRequest{}, incomplete(badDate(date))
	}
	return signedRequest{
		algorithm:     f.algorithm,
		credential:    f.credential,
		signature:     f.signature,
		signedHeaders: f.signedHeaders,
		amzDate:       t.Format(TimeFormat),
		t:             t,
	}, nil
}

// fromQuery reads the presigned (query-string) form.
func (v *Verifier) fromQuery(q queryParams, now time.Time) (signedRequest, *AuthError) {
	var missing []string
	need := func(name string) string {
		val, _ := q.get(name)
		if val == "" {
			missing = append(missing, "AWS query-string parameters must include '"+name+"'.")
		}
		return val
	}
	sr := signedRequest{presigned: true}
	sr.algorithm = need("X-Amz-Algorithm")
	sr.credential = need("X-Amz-Credential")
	sr.signature = need("X-Amz-Signature")
	sr.signedHeaders = need("X-Amz-SignedHeaders")
	date := need("X-Amz-Date")
	if len(missing) > 0 {
		return signedRequest{}, incomplete(strings.Join(missing, " ") + " Re-examine the query-string parameters.")
	}
	t, ok := parseRequestTime(date, true)
	if !ok {
		return signedRequest{}, incomplete(badDate(date))
	}
	sr.t, sr.amzDate = t, t.Format(TimeFormat)
	if exp, present := q.get("X-Amz-Expires"); present {
		secs, aerr := parseExpires(exp)
		if aerr != nil {
			return signedRequest{}, aerr
		}
		if now.After(t.Add(time.Duration(secs) * time.Second)) {
			return signedRequest{}, authErr(CodeAccessDenied, http.StatusForbidden, MsgRequestExpired)
		}
	}
	return sr, nil
}

func parseExpires(s string) (int64, *AuthError) {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, incomplete("X-Amz-Expires should be a number")
	}
	if digits != s {
		return 0, incomplete("X-Amz-Expires must be non-negative")
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > MaxPresignExpires {
		return 0, incomplete("X-Amz-Expires must be less than a week (in seconds) that is 604800")
	}
	return n, nil
}

func (v *Verifier) checkSkew(sr signedRequest, now time.Time) *AuthError {
	skew := v.maxSkew()
	var span string
	if skew%time.Minute == 0 {
		span = strconv.FormatInt(int64(skew/time.Minute), 10) + " min."
	} else {
		span = skew.String() + "."
	}
	if earliest := now.Add(-skew); sr.t.Before(earliest) {
		return invalid("Signature expired: " + sr.amzDate + " is now earlier than " + earliest.Format(TimeFormat) +
			" (" + now.Format(TimeFormat) + " - " + span + ")")
	}
	if latest := now.Add(skew); sr.t.After(latest) {
		return invalid("Signature not yet current: " + sr.amzDate + " is still later than " + latest.Format(TimeFormat) +
			" (" + now.Format(TimeFormat) + " + " + span + ")")
	}
	return nil
}

func badDate(s string) string {
	return "Date must be in ISO-8601 'basic format'. Got '" + s + "'. See http://en.wikipedia.org/wiki/ISO_8601"
}

func firstNonEmpty(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// parseRequestTime parses X-Amz-Date (ISO-8601 basic only) or Date (ISO-8601
// basic or any HTTP date format).
func parseRequestTime(s string, amz bool) (time.Time, bool) {
	if t, err := time.Parse(TimeFormat, s); err == nil && t.Format(TimeFormat) == s {
		return t, true
	}
	if amz {
		return time.Time{}, false
	}
	t, err := http.ParseTime(s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC().Truncate(time.Second), true
}

// payloadHashes returns the payload hashes the signature may have been
// computed with, after checking X-Amz-Content-Sha256 against the body.
func payloadHashes(r *http.Request, q queryParams, body []byte, presigned bool) ([]string, *AuthError) {
	sum := sha256.Sum256(body)
	computed := hex.EncodeToString(sum[:])
	declared := r.Header.Get("X-Amz-Content-Sha256")
	if presigned {
		if qv, ok := q.get("X-Amz-Content-Sha256"); ok {
			declared = qv
		}
	}
	switch {
	case declared == "" && presigned:
		return []string{computed, UnsignedPayload}, nil
	case declared == "":
		return []string{computed}, nil
	case declared == UnsignedPayload && presigned:
		return []string{UnsignedPayload}, nil
	case declared == UnsignedPayload:
		return nil, invalid(MsgUnsignedPayloadInHeader)
	case declared != computed:
		return nil, invalid(MsgContentSHA256Mismatch)
	}
	return []string{computed}, nil
}

// SigningKey derives the SigV4 signing key:
// HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").
func SigningKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte(Terminator))
}

func hmacSHA256(key, data []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(data)
	return h.Sum(nil)
}

// canonicalURI is the escaped path URI-encoded once more (everything but
// unreserved characters and '/'), as SigV4 requires for non-S3 services.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if u.Opaque != "" {
		// As aws-sdk-go-v2: the path part of an opaque "//host/path".
		o, _, _ := strings.Cut(u.Opaque, "?")
		o = strings.TrimPrefix(o, "//")
		p = ""
		if i := strings.IndexByte(o, '/'); i >= 0 {
			p = o[i:]
		}
	}
	if p == "" {
		return "/"
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if unreserved(c) || c == '/' {
			b.WriteByte(c)
		} else {
			writePct(&b, c)
		}
	}
	return b.String()
}

// headerValues returns the values of the header named n (any case), with
// the request's fields standing in for the headers net/http moves out of
// Header (host, or its HTTP/2 name :authority, content-length,
// transfer-encoding).
func headerValues(r *http.Request, n string) []string {
	if strings.EqualFold(n, "host") || n == ":authority" {
		if r.Host != "" {
			return []string{r.Host}
		}
		return []string{r.URL.Host}
	}
	vs := r.Header[textproto.CanonicalMIMEHeaderKey(n)]
	if vs == nil {
		var keys []string
		for k := range r.Header {
			if strings.EqualFold(k, n) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			vs = append(vs, r.Header[k]...)
		}
	}
	if len(vs) == 0 {
		switch {
		case strings.EqualFold(n, "content-length") && r.ContentLength > 0:
			return []string{strconv.FormatInt(r.ContentLength, 10)}
		case strings.EqualFold(n, "transfer-encoding") && len(r.TransferEncoding) > 0:
			return []string{strings.Join(r.TransferEncoding, ",")}
		}
	}
	return vs
}

// writeCanonicalValues writes values trimmed, with runs of spaces collapsed
// to one, joined by commas.
func writeCanonicalValues(b *strings.Builder, vs []string) {
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		v = strings.TrimSpace(v)
		space := false
		for j := 0; j < len(v); j++ {
			c := v[j]
			if c == ' ' {
				if space {
					continue
				}
				space = true
			} else {
				space = false
			}
			b.WriteByte(c)
		}
	}
}

// queryParam is one query parameter: name and value both in canonical
// (RFC 3986) encoding and decoded.
type queryParam struct {
	key, value   string
	dkey, dvalue string
}

type queryParams []queryParam

// get returns the decoded value of the first parameter named name.
func (q queryParams) get(name string) (string, bool) {
	for _, p := range q {
		if p.dkey == name {
			return p.dvalue, true
		}
	}
	return "", false
}

// writeCanonical writes the canonical query string: parameters sorted by
// encoded name, then encoded value; X-Amz-Signature left out of a presigned
// request.
func (q queryParams) writeCanonical(b *strings.Builder, presigned bool) {
	ps := make([]queryParam, 0, len(q))
	for _, p := range q {
		if presigned && p.dkey == "X-Amz-Signature" {
			continue
		}
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].key != ps[j].key {
			return ps[i].key < ps[j].key
		}
		return ps[i].value < ps[j].value
	})
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.key)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
}

// parseQuery splits a raw query string into parameters. Empty pieces are
// skipped; a piece without '=' is a name with an empty value.
func parseQuery(raw string) (queryParams, *AuthError) {
	if raw == "" {
		return nil, nil
	}
	var q queryParams
	for piece := range strings.SplitSeq(raw, "&") {
		if piece == "" {
			continue
		}
		k, v, _ := strings.Cut(piece, "=")
		ek, dk, err := normalizeQueryElement(k)
		if err != nil {
			return nil, err
		}
		ev, dv, err := normalizeQueryElement(v)
		if err != nil {
			return nil, err
		}
		q = append(q, queryParam{key: ek, value: ev, dkey: dk, dvalue: dv})
	}
	return q, nil
}

// normalizeQueryElement decodes percent-escapes in s and re-encodes it per
// RFC 3986 with upper-case hex. '+' is a literal plus, as for AWS.
func normalizeQueryElement(s string) (enc, dec string, _ *AuthError) {
	if !needsNormalizing(s) {
		return s, s, nil
	}
	var e, d strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case unreserved(c):
			e.WriteByte(c)
			d.WriteByte(c)
		case c == '%':
			if i+2 >= len(s) {
				return "", "", incomplete("Incomplete trailing escape % sequence")
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", "", incomplete("Illegal hex character in escape % pattern: %" + s[i+1:i+3])
			}
			b := hi<<4 | lo
			d.WriteByte(b)
			if unreserved(b) {
				e.WriteByte(b)
			} else {
				writePct(&e, b)
			}
			i += 2
		default:
			d.WriteByte(c)
			writePct(&e, c)
		}
	}
	return e.String(), d.String(), nil
}

func needsNormalizing(s string) bool {
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			return true
		}
	}
	return false
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

const upperHex = "0123456789ABCDEF"

func writePct(b *strings.Builder, c byte) {
	b.WriteByte('%')
	b.WriteByte(upperHex[c>>4])
	b.WriteByte(upperHex[c&15])
}
