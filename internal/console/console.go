// Package console owns the web console of cloudhsm-local, served on the
// API's own listener under /_cloudhsm-local/console/: server-rendered
// pages of the estate (accounts and regions, clusters, HSMs, certificates,
// backups, the clock, faults), the request log of the last API calls, the
// actions a person can take, and the live stream (server-sent events) that
// updates open pages within a second of any change.
//
// Everything it shows it reads from the domain; everything it does goes
// through the AWS API's own operation handlers (awsjson.Server.Invoke) or
// the admin API's (admin.API.Invoke), so there is no second path into the
// estate. It follows the admin API's access rules (admin.Access). Its
// assets are embedded; nothing is fetched from another host.
package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
)

// Prefix is where the console lives on the server's listener.
const Prefix = "/_cloudhsm-local/console/"

//go:embed assets templates
var files embed.FS

// Options configure the console.
type Options struct {
	Service *cloudhsm.Service
	// Invoke runs an AWS operation in process through the API's handlers
	// (awsjson.Server.Invoke).
	Invoke func(ctx context.Context, op string, caller any, body []byte) (int, []byte)
	// Admin is the admin API: its access rules and its handlers.
	Admin  *admin.API
	Faults *faults.Injector
	// Requests is the request log; nil when it is off.
	Requests *RequestLog
	Logger   *slog.Logger
	// DefaultAccount and DefaultRegion fill the forms.
	DefaultAccount, DefaultRegion string
	// MaxStreams caps the open live streams (0: DefaultMaxStreams).
	MaxStreams int
	// TopologyFile, when set, declares the subnets the create form offers.
	TopologyFile string
}

// Console is the console's HTTP handler.
type Console struct {
	svc            *cloudhsm.Service
	invoke         func(ctx context.Context, op string, caller any, body []byte) (int, []byte)
	admin          *admin.API
	access         *admin.Access
	faults         *faults.Injector
	requests       *RequestLog
	log            *slog.Logger
	defaultAccount string
	defaultRegion  string
	topology       []SubnetChoice
	estate         *estate
	hub            *hub
	acts           map[string]action
	mux            *http.ServeMux
	tmpl           *template.Template
	assets         map[string]asset
	cache          pageCache
	started        sync.Once
}

type asset struct {
	body        []byte
	contentType string
	hashedName  string
}

// New returns the console; Close stops its live streams.
func New(o Options) (*Console, error) {
	c := &Console{svc: o.Service, invoke: o.Invoke, admin: o.Admin, access: o.Admin.Access(), faults: o.Faults, requests: o.Requests,
		log: o.Logger, defaultAccount: o.DefaultAccount, defaultRegion: o.DefaultRegion}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if o.TopologyFile != "" {
		choices, err := topologyChoices(o.TopologyFile)
		if err != nil {
			return nil, fmt.Errorf("console: topology: %w", err)
		}
		c.topology = choices
	}
	sh, err := shared()
	if err != nil {
		return nil, err
	}
	c.tmpl, c.assets = sh.tmpl, sh.assets
	c.estate = newEstate(o.Service)
	c.hub = newHub(o.Service, o.Faults, o.Requests, o.MaxStreams)
	return c, nil
}

// route makes the routing table and the actions, on the console's first
// request (servers whose console is never opened do not pay for them).
func (c *Console) route() {
	c.mux = http.NewServeMux()
	c.acts = c.actions()
	routes := map[string]http.HandlerFunc{
		"GET /{$}":                        c.estatePage,
		"GET /clusters/{id}":              c.clusterPage,
		"GET /clusters/{id}/certs/{file}": c.certFile,
		"GET /backups/{id}":               c.backupPage,
		"GET /requests":                   c.requestsPage,
		"GET /requests/{seq}":             c.callPage,
		"GET /events":                     c.events,
		"POST /actions/{name}":            c.action,
		"POST /logout":                    c.logout,
	}
	for pattern, h := range routes {
		method, p, _ := strings.Cut(pattern, " ")
		c.mux.Handle(method+" "+strings.TrimSuffix(Prefix, "/")+p, c.guarded(h))
	}
	c.mux.HandleFunc("GET "+Prefix+"assets/{name}", c.assetFile)
	c.mux.HandleFunc("GET "+Prefix+"login", c.loginPage)
	c.mux.HandleFunc("POST "+Prefix+"login", c.login)
	c.mux.Handle(Prefix, c.guarded(func(w http.ResponseWriter, r *http.Request) {
		c.message(w, r, http.StatusNotFound, "Not found", "There is no console page at "+r.URL.Path+".")
	}))
}

// Close ends the live streams.
func (c *Console) Close() { c.hub.close() }

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// No script or style but the console's own, no framing, no sniffing.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.started.Do(func() {
		c.route()
		c.hub.start()
	})
	c.mux.ServeHTTP(w, r)
}

// guarded applies the admin API's access rules to a console handler: a
// browser without the token gets the page that asks for it.
func (c *Console) guarded(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ref := c.access.Check(r)
		if ref == nil {
			h(w, r)
			return
		}
		if r.Method != http.MethodGet {
			writeResult(w, ref.Status, ActionResult{Code: strconv.Itoa(ref.Status), Message: ref.Message})
			return
		}
		if ref.NeedToken {
			c.render(w, r, http.StatusUnauthorized, page{Title: "Admin token", Page: "login", Data: loginData{Next: r.URL.RequestURI()}})
			return
		}
		c.message(w, r, ref.Status, "Refused", ref.Message)
	})
}

// ---- assets ----

// parsed is what every console of the process shares, made once: the
// templates and the assets, both read-only after.
type parsed struct {
	tmpl   *template.Template
	assets map[string]asset
}

// shared parses the embedded templates and assets once for the process
// (servers started by the hundred in a test binary each start a console).
var shared = sync.OnceValues(func() (parsed, error) {
	assets, err := loadAssets()
	if err != nil {
		return parsed{}, fmt.Errorf("console: assets: %w", err)
	}
	tmpl, err := template.New("").Funcs(funcs(assets)).ParseFS(files, "templates/*.html")
	if err != nil {
		return parsed{}, fmt.Errorf("console: templates: %w", err)
	}
	return parsed{tmpl, assets}, nil
})

func loadAssets() (map[string]asset, error) {
	out := map[string]asset{}
	types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
	return out, fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		name := path.Base(p)
		ext := path.Ext(name)
		hashed := strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:6]) + ext
		a := asset{body: b, contentType: types[ext], hashedName: hashed}
		out[name] = a
		out[hashed] = a
		return nil
	})
}

func (c *Console) assetFile(w http.ResponseWriter, r *http.Request) {
	a, ok := c.assets[r.PathValue("name")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	if r.PathValue("name") == a.hashedName {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	_, _ = w.Write(a.body)
}

// ---- the token ----

type loginData struct {
	Next  string
	Error string
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if ref := c.access.CheckHost(r); ref != nil {
		c.message(w, r, ref.Status, "Refused", ref.Message)
		return
	}
	c.render(w, r, http.StatusOK, page{Title: "Admin token", Page: "login", Data: loginData{Next: r.URL.Query().Get("next")}})
}

// login keeps the admin token in an HttpOnly, SameSite=Strict cookie
// named for the server's port, which the admin API accepts too.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if ref := c.access.CheckHost(r); ref != nil {
		c.message(w, r, ref.Status, "Refused", ref.Message)
		return
	}
	if ref := admin.CheckOrigin(r); ref != nil {
		c.message(w, r, ref.Status, "Refused", ref.Message)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	_ = r.ParseForm()
	next := r.PostForm.Get("next")
	if !strings.HasPrefix(next, Prefix) {
		next = Prefix
	}
	if !c.access.ValidToken(r.PostForm.Get("token")) {
		msg := "That is not the admin token."
		if !c.access.TokenRequired() {
			msg = "This server has no admin token (--admin-token): the console answers loopback callers without one."
		}
		c.render(w, r, http.StatusUnauthorized, page{Title: "Admin token", Page: "login", Data: loginData{Next: next, Error: msg}})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: admin.CookieName(r), Value: strings.TrimSpace(r.PostForm.Get("token")), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: admin.CookieName(r), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	writeResult(w, http.StatusOK, ActionResult{OK: true, Message: "Signed out.", Location: Prefix})
}

// ---- rendering ----

// page is what the layout template renders.
type page struct {
	Title  string
	Page   string // estate, cluster, backup, requests, call, choose, message, login
	ID     string
	Gen    uint64
	Reqs   uint64
	Events string // the live stream's URL; "" for none
	Clock  clockJSON
	Data   any
	// SignedIn: the server has a token, and the console holds it.
	SignedIn bool
}

// pageCache keeps rendered pages for a second, as long as nothing changed
// (the hub's generation): a hundred open consoles told of one change
// render each page they show once, not a hundred times.
type pageCache struct {
	mu      sync.Mutex
	entries map[string]cachedPage
}

type cachedPage struct {
	gen, reqs uint64
	at        time.Time
	status    int
	body      []byte
	etag      string
}

const (
	cacheFor     = time.Second
	cacheEntries = 256
)

// cached serves r from the cache or renders it with fn. A page fetched
// for an event (the page's script sends the event's generation and
// request log version in X-Console-Seen) may be any page rendered since
// the event; another request wants the estate as it is now. Either way a
// page is kept at most a second (it shows the clock).
func (c *Console) cached(w http.ResponseWriter, r *http.Request, fn func() (int, page)) {
	gen, reqs := c.hub.gen.Load(), uint64(0)
	if c.requests != nil {
		reqs = c.requests.Version()
	}
	wantGen, wantReqs := gen, reqs
	if g, q, ok := strings.Cut(r.Header.Get("X-Console-Seen"), ","); ok {
		sg, err1 := strconv.ParseUint(g, 10, 64)
		sq, err2 := strconv.ParseUint(q, 10, 64)
		if err1 == nil && err2 == nil && sg <= gen && sq <= reqs {
			wantGen, wantReqs = sg, sq
		}
	}
	key := r.URL.RequestURI()
	c.cache.mu.Lock()
	e, ok := c.cache.entries[key]
	c.cache.mu.Unlock()
	if ok && e.gen >= wantGen && e.reqs >= wantReqs && time.Since(e.at) < cacheFor {
		writeCached(w, r, e)
		return
	}
	status, p := fn()
	p.Gen, p.Reqs = gen, reqs
	body, err := c.execute(r, p)
	if err != nil {
		c.log.Error("console: render", "page", p.Page, "err", err)
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	sum := fnv.New64a()
	_, _ = sum.Write(body)
	e = cachedPage{gen: gen, reqs: reqs, at: time.Now(), status: status, body: body, etag: fmt.Sprintf(`"%x"`, sum.Sum64())}
	c.cache.mu.Lock()
	if c.cache.entries == nil || len(c.cache.entries) >= cacheEntries {
		c.cache.entries = map[string]cachedPage{}
	}
	c.cache.entries[key] = e
	c.cache.mu.Unlock()
	writeCached(w, r, e)
}

// writeCached answers with a page, or 304 when the page the browser's
// script holds (If-None-Match) is the same: a change that leaves a page
// as it was costs its watchers a header, not the page.
func writeCached(w http.ResponseWriter, r *http.Request, e cachedPage) {
	w.Header().Set("ETag", e.etag)
	if e.status == http.StatusOK && r.Header.Get("If-None-Match") == e.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writePage(w, e.status, e.body)
}

func (c *Console) execute(r *http.Request, p page) ([]byte, error) {
	if p.Clock.Now == 0 {
		p.Clock = c.hub.clock()
	}
	p.SignedIn = c.access.TokenRequired() && p.Page != "login"
	var buf bytes.Buffer
	if err := c.tmpl.ExecuteTemplate(&buf, "layout", p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writePage(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// render renders a page that is not cached.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, p page) {
	p.Gen = c.hub.gen.Load()
	body, err := c.execute(r, p)
	if err != nil {
		c.log.Error("console: render", "page", p.Page, "err", err)
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writePage(w, status, body)
}

type messageData struct{ Heading, Text string }

func (c *Console) message(w http.ResponseWriter, r *http.Request, status int, heading, text string) {
	c.render(w, r, status, page{Title: heading, Page: "message", Data: messageData{heading, text}})
}

// ---- live stream ----

// events streams the changes that matter to one page (see hub.serve).
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("id")
	var wants func(*Batch) bool
	switch q.Get("page") {
	case "cluster":
		wants = func(b *Batch) bool { return b.All || b.Clock != nil || contains(b.Clusters, id) }
	case "requests":
		wants = func(b *Batch) bool { return b.Requests || b.Clock != nil }
	case "estate":
		wants = func(b *Batch) bool { return b.Overview || b.All || b.Faults || b.Clock != nil }
	case "backup":
		wants = func(b *Batch) bool { return b.Estate || b.All || b.Clock != nil }
	default:
		wants = func(b *Batch) bool { return b.Clock != nil }
	}
	c.hub.serve(w, r, wants)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ---- topology ----

// topologyChoices reads the subnets a topology file declares, for the
// create form (the network provider checks them; this only lists them).
func topologyChoices(p string) ([]SubnetChoice, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Subnets []struct {
			ID, VpcID, AvailabilityZone, Cidr string
			Accounts                          []string
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var out []SubnetChoice
	for _, s := range doc.Subnets {
		region := s.AvailabilityZone
		if len(region) > 1 {
			region = region[:len(region)-1]
		}
		ch := SubnetChoice{Region: region}
		ch.Subnet.ID, ch.Subnet.VpcID, ch.Subnet.AZ = s.ID, s.VpcID, s.AvailabilityZone
		if len(s.Accounts) == 0 {
			out = append(out, ch)
		}
		for _, a := range s.Accounts {
			ch.Account = a
			out = append(out, ch)
		}
	}
	return out, nil
}
