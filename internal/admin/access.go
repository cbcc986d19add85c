package admin

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// Access is the admin API's access policy, which the console (and pprof)
// share. A request passes three checks, in order:
//
//   - Host: a request that arrives on a loopback address must name the
//     server as localhost, 127.0.0.1 or [::1] (or another loopback address),
//     with the port it arrived on, or as one of AllowedHosts: a web page
//     whose name an attacker points at 127.0.0.1 (DNS rebinding) is
//     refused. A request that arrives on another address (Docker, a load
//     balancer) may name any host, unless AllowedHosts narrows it. An IP
//     address that is the connection's own is always the server's name.
//   - Origin: a state change (any method but GET, HEAD and OPTIONS) that a
//     browser sends from another origin is refused. Browsers say where a
//     request comes from (Origin, Sec-Fetch-Site); a request with neither
//     (curl, SDKs, the admin CLI) is not a browser's and is let through,
//     whatever its body or content type.
//   - Token: with a token, every request must carry it, as a bearer token
//     or in the console's cookie (see CookieName); without one, only
//     loopback callers are let in.
type Access struct {
	token        string
	allowedHosts []string // lower case; "name" or "name:port"
}

// NewAccess returns the policy for a server with the given admin token
// (empty: none) and --allowed-hosts names.
func NewAccess(token string, allowedHosts []string) *Access {
	ac := &Access{token: token}
	for _, h := range allowedHosts {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			ac.allowedHosts = append(ac.allowedHosts, h)
		}
	}
	return ac
}

// Refusal says why a request was refused and with which status.
type Refusal struct {
	Status  int
	Message string
	// NeedToken is set when the request lacks the admin token (401).
	NeedToken bool
}

// TokenRequired reports whether the server has an admin token.
func (ac *Access) TokenRequired() bool { return ac.token != "" }

// ValidToken reports whether s is the admin token.
func (ac *Access) ValidToken(s string) bool {
	return ac.token != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(s)), []byte(ac.token)) == 1
}

// Check applies the policy to r; nil means r may go on.
func (ac *Access) Check(r *http.Request) *Refusal {
	if ref := ac.CheckHost(r); ref != nil {
		return ref
	}
	if ref := CheckOrigin(r); ref != nil {
		return ref
	}
	return ac.checkCaller(r)
}

// checkCaller applies the token, or without one the loopback rule.
func (ac *Access) checkCaller(r *http.Request) *Refusal {
	if ac.token != "" {
		if ac.ValidToken(bearer(r)) {
			return nil
		}
		if c, err := r.Cookie(CookieName(r)); err == nil && ac.ValidToken(c.Value) {
			return nil
		}
		return &Refusal{Status: http.StatusUnauthorized, NeedToken: true,
			Message: "the admin API requires the admin token: send Authorization: Bearer <token>"}
	}
	if !IsLoopback(r.RemoteAddr) {
		return &Refusal{Status: http.StatusForbidden,
			Message: "the admin API answers only loopback callers unless the server has an admin token (--admin-token)"}
	}
	return nil
}

func bearer(r *http.Request) string {
	// The scheme name is case-insensitive (RFC 9110).
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return got
}

// CookieName is the name of the cookie in which the console keeps the
// admin token: it names the port the request arrived on, so that servers
// side by side on one host (browsers share cookies across ports) keep
// their own.
func CookieName(r *http.Request) string {
	port := ""
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil {
			port = fmt.Sprint(ap.Port())
		}
	}
	if port == "" {
		_, port = splitHostPort(r.Host)
	}
	if port == "" {
		port = "80"
	}
	return "cloudhsm_local_admin_" + port
}

// local returns the address the request arrived on, when a listener told.
func local(r *http.Request) (netip.AddrPort, bool) {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(la.String())
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// CheckHost refuses a Host header that is not a name of this server (see
// Access).
func (ac *Access) CheckHost(r *http.Request) *Refusal {
	host, port := splitHostPort(strings.ToLower(r.Host))
	host = strings.TrimSuffix(host, ".")
	la, known := local(r)
	portOK := func() bool {
		if !known {
			return true
		}
		want := fmt.Sprint(la.Port())
		return port == want || port == "" && want == "80"
	}
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && known && ip.Unmap() == la.Addr() && portOK() {
		return nil
	}
	for _, h := range ac.allowedHosts {
		if h == host || h == host+":"+port {
			return nil
		}
	}
	onLoopback := IsLoopback(r.RemoteAddr)
	if known {
		onLoopback = la.Addr().IsLoopback()
	}
	if onLoopback {
		if loopbackName(host) && portOK() {
			return nil
		}
		return &Refusal{Status: http.StatusForbidden, Message: fmt.Sprintf("Host %q is not a name of this server: on a loopback address the admin API and the console answer only to localhost, 127.0.0.1 or [::1] with the server's port (so that no web page reaches them through DNS rebinding); start the server with --allowed-hosts to add a name", r.Host)}
	}
	if len(ac.allowedHosts) == 0 {
		return nil
	}
	return &Refusal{Status: http.StatusForbidden, Message: fmt.Sprintf("Host %q is not one of the names this server answers to (--allowed-hosts %s)", r.Host, strings.Join(ac.allowedHosts, ","))}
}

func loopbackName(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// splitHostPort splits a Host header; the port is "" when absent.
func splitHostPort(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		if strings.Contains(h, ":") {
			h = "[" + h + "]"
		}
		return h, p
	}
	return hostport, ""
}

// CheckOrigin refuses a state change that a browser sends from another
// origin (see Access). Methods that change nothing pass.
func CheckOrigin(r *http.Request) *Refusal {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	origin, site := r.Header.Get("Origin"), r.Header.Get("Sec-Fetch-Site")
	if origin == "" && site == "" {
		return nil // not sent by a browser
	}
	refuse := &Refusal{Status: http.StatusForbidden, Message: fmt.Sprintf("cross-origin request refused: a change must come from this server's own pages (Origin %q, Sec-Fetch-Site %q); curl, the SDKs and the admin CLI send neither header", origin, site)}
	if site != "" && site != "same-origin" && site != "none" {
		return refuse
	}
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return refuse // "null" and other opaque origins
	}
	schemes := []string{"http"}
	if r.TLS != nil {
		schemes = []string{"https"}
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		// A proxy terminating TLS; a browser cannot add this header to a
		// cross-origin request without a preflight, which gets no answer.
		schemes = append(schemes, strings.ToLower(p))
	}
	for _, scheme := range schemes {
		if strings.EqualFold(u.Scheme, scheme) && sameHost(u.Host, r.Host, scheme) {
			return nil
		}
	}
	return refuse
}

// sameHost compares two host[:port] values, with the scheme's default port
// filled in.
func sameHost(a, b, scheme string) bool {
	def := "80"
	if scheme == "https" {
		def = "443"
	}
	norm := func(s string) string {
		h, p := splitHostPort(strings.ToLower(s))
		if p == "" {
			p = def
		}
		return h + ":" + p
	}
	return norm(a) == norm(b)
}

// IsLoopback reports whether a request's RemoteAddr is a loopback address.
func IsLoopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		addr, err2 := netip.ParseAddr(remoteAddr)
		if err2 != nil {
			return false
		}
		return addr.Unmap().IsLoopback()
	}
	return ap.Addr().Unmap().IsLoopback()
}
