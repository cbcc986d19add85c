// Package admin owns the admin API of cloudhsm-local under /_cloudhsm-local/:
// JSON over HTTP for what AWS does out of band (activating a cluster on its
// HSM, degrading and healing HSMs, the simulated roots) and for test and
// operator control (health, reset, export and import of the whole state, the
// clock, fault injection). It also holds a Go client of that API, used by the
// `cloudhsm-local admin` command.
//
// Access (see Access): the Host must be a name of the server (DNS
// rebinding), a state change sent by a browser must come from the server's
// own origin, and without a token only loopback callers may use the API
// (others get 403), except GET health, which readiness probes reach from
// anywhere. With a token every request, health included, must carry it as a
// bearer token or in the console's cookie (401 otherwise), from any address.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
	"github.com/cloudhsm-local/cloudhsm-local/internal/snapshot"
)

// Prefix is where the admin API lives on the server's listener.
const Prefix = "/_cloudhsm-local/"

// Body size limits.
const (
	maxSmallBody  = 64 << 10
	maxImportBody = 256 << 20
)

// Options configure the admin API.
type Options struct {
	Service *cloudhsm.Service
	// Faults is the injector the fault endpoints manage; nil disables them.
	Faults *faults.Injector
	Logger *slog.Logger
	// DefaultAccount and DefaultRegion are the tenant of requests that name
	// none (defaults: 123456789012, us-east-1).
	DefaultAccount string
	DefaultRegion  string
	// Token, when set, is required from every caller as
	// "Authorization: Bearer <token>" (or the console's cookie), and lets
	// non-loopback callers in.
	Token string
	// AllowedHosts are the names the API answers to besides its own
	// (see Access).
	AllowedHosts []string
}

// API is the admin HTTP handler.
type API struct {
	svc            *cloudhsm.Service
	faults         *faults.Injector
	log            *slog.Logger
	defaultAccount string
	defaultRegion  string
	access         *Access
	mux            *http.ServeMux
}

// New returns the admin API.
func New(o Options) *API {
	a := &API{svc: o.Service, faults: o.Faults, log: o.Logger, defaultAccount: o.DefaultAccount, defaultRegion: o.DefaultRegion, access: NewAccess(o.Token, o.AllowedHosts), mux: http.NewServeMux()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.defaultAccount == "" {
		a.defaultAccount = cloudhsm.DefaultAccount
	}
	if a.defaultRegion == "" {
		a.defaultRegion = cloudhsm.DefaultRegion
	}
	routes := map[string]http.HandlerFunc{
		"GET health":                  a.health,
		"POST reset":                  a.reset,
		"GET export":                  a.export,
		"POST import":                 a.importSnapshot,
		"GET roots/manufacturer.pem":  a.manufacturerRoot,
		"GET roots/aws.pem":           a.awsRoot,
		"POST clusters/{id}/activate": a.activate,
		"POST hsms/degrade":           a.degrade,
		"POST hsms/heal":              a.heal,
		"GET clock":                   a.clockGet,
		"POST clock/advance":          a.clockAdvance,
		"POST clock/freeze":           a.clockFreeze,
		"POST clock/resume":           a.clockResume,
		"POST clock/real-time":        a.clockRealTime,
		"GET faults":                  a.faultsList,
		"POST faults":                 a.faultsAdd,
		"DELETE faults":               a.faultsClear,
		"GET faults/{id}":             a.faultsGet,
		"DELETE faults/{id}":          a.faultsDelete,
	}
	for pattern, h := range routes {
		method, path, _ := strings.Cut(pattern, " ")
		a.mux.HandleFunc(method+" "+Prefix+path, h)
	}
	a.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no admin endpoint %s %s (see docs/admin-api.md)", r.Method, r.URL.Path))
	})
	return a
}

// ServeHTTP checks access, then serves the endpoint and logs the call.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.serve(w, r, false)
}

// serve checks access (unless the caller has: Invoke), serves the endpoint
// and logs the call.
func (a *API) serve(w http.ResponseWriter, r *http.Request, allowed bool) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	if allowed || a.allow(sw, r) {
		a.mux.ServeHTTP(sw, r)
	}
	level := slog.LevelInfo
	if r.Method == http.MethodGet && sw.status < 400 {
		level = slog.LevelDebug // health probes and scrapes would drown the log
	}
	a.log.LogAttrs(r.Context(), level, "admin request",
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", sw.code()),
		slog.String("remote", r.RemoteAddr),
		slog.Duration("duration", time.Since(start)))
}

// Guard applies the admin API's access rules to another handler (pprof).
func (a *API) Guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.allow(w, r) {
			h.ServeHTTP(w, r)
		}
	})
}

// allow applies the access rules (see Access); it answers the refusal
// itself. GET health answers readiness probes from anywhere, by any name.
func (a *API) allow(w http.ResponseWriter, r *http.Request) bool {
	ref := a.access.Check(r)
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.URL.Path == Prefix+"health" {
		ref = nil
		if a.access.TokenRequired() {
			ref = a.access.checkCaller(r)
		}
	}
	if ref == nil {
		return true
	}
	if ref.NeedToken {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cloudhsm-local admin"`)
	}
	writeErr(w, ref.Status, ref.Message)
	return false
}

// Access returns the access policy, for the handlers that share it.
func (a *API) Access() *Access { return a.access }

// Invoke calls an admin endpoint in process (method, the path under Prefix
// with its query, a JSON body) and returns the status and body the HTTP API
// would answer. It skips the access rules: its caller (the console) has
// applied them to its own request already.
func (a *API) Invoke(ctx context.Context, method, path string, body []byte) (int, []byte) {
	r, err := http.NewRequestWithContext(ctx, method, Prefix+path, bytes.NewReader(body))
	if err != nil {
		return http.StatusBadRequest, []byte(fmt.Sprintf(`{"error":%q}`, err.Error()))
	}
	r.RemoteAddr = "console"
	w := &bufferWriter{header: http.Header{}}
	a.serve(w, r, true)
	return w.code(), w.body.Bytes()
}

type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferWriter) Header() http.Header { return w.header }
func (w *bufferWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *bufferWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}
func (w *bufferWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ---- encoding ----

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeErr(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// ErrorBody is the body of every admin API error.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(ErrorBody{Error: msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decode reads a JSON body strictly (unknown fields are refused). An empty
// body leaves v untouched when optional.
func decode(w http.ResponseWriter, r *http.Request, limit int64, v any, optional bool) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErr(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", limit))
			return false
		}
		writeErr(w, http.StatusBadRequest, "read body: "+err.Error())
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if optional {
			return true
		}
		writeErr(w, http.StatusBadRequest, "a JSON body is required")
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	if dec.More() {
		writeErr(w, http.StatusBadRequest, "invalid JSON body: more than one JSON value")
		return false
	}
	return true
}

// domainErr answers a domain error: not found is 404, a refusal is
// refusedStatus (409 for a state conflict, 400 for bad input).
func (a *API) domainErr(w http.ResponseWriter, err error, refusedStatus int) {
	var de *cloudhsm.Error
	if errors.As(err, &de) {
		status := refusedStatus
		if de.Kind == cloudhsm.KindNotFound {
			status = http.StatusNotFound
		}
		writeErr(w, status, err.Error())
		return
	}
	a.log.Error("admin request failed", "err", err)
	writeErr(w, http.StatusInternalServerError, err.Error())
}

// ---- tenancy ----

var accountRe = regexp.MustCompile(`^[0-9]{12}$`)

// Tenancy names an (account, region); fields left empty take the query
// parameters, then the server's defaults.
type Tenancy struct {
	Account string `json:"account,omitempty"`
	Region  string `json:"region,omitempty"`
}

// tenant resolves the tenant of a request from the body's fields, the
// query and the defaults, and checks it.
func (a *API) tenant(w http.ResponseWriter, r *http.Request, body Tenancy) (cloudhsm.Tenant, bool) {
	t := cloudhsm.Tenant{Account: body.Account, Region: body.Region}
	if t.Account == "" {
		t.Account = r.URL.Query().Get("account")
	}
	if t.Region == "" {
		t.Region = r.URL.Query().Get("region")
	}
	if t.Account == "" {
		t.Account = a.defaultAccount
	}
	if t.Region == "" {
		t.Region = a.defaultRegion
	}
	if !accountRe.MatchString(t.Account) {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("account %q is not a 12-digit AWS account id", t.Account))
		return t, false
	}
	if !cloudhsm.KnownRegion(t.Region) {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("region %q is not an AWS region", t.Region))
		return t, false
	}
	return t, true
}

// ---- health, roots ----

// Health is the answer of GET health.
type Health struct {
	// Status is "ok", or "unavailable" (503) when the store does not
	// answer: a replica of a shared estate whose database is away.
	Status string `json:"status"`
	Time   string `json:"time,omitempty"`
	Error  string `json:"error,omitempty"`
	// Leader, for a replica of a shared estate, says whether it holds the
	// lease for timed work.
	Leader *bool `json:"leader,omitempty"`
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", Time: a.svc.Clock().Now().UTC().Format(time.RFC3339Nano)}
	if leader, shared := a.svc.Leader(); shared {
		h.Leader = &leader
	}
	if err := a.svc.Ready(r.Context()); err != nil {
		h.Status, h.Error = "unavailable", err.Error()
		writeJSON(w, http.StatusServiceUnavailable, h)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

func (a *API) manufacturerRoot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	roots, err := a.svc.Authority()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	_, _ = w.Write([]byte(roots.ManufacturerRootPEM()))
}

func (a *API) awsRoot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	roots, err := a.svc.Authority()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	_, _ = w.Write([]byte(roots.AWSRootPEM()))
}

// ---- reset, export, import ----

// ResetResult is the answer of POST reset.
type ResetResult struct {
	Status string `json:"status"`
	// Account is the account reset; empty when every account was.
	Account string `json:"account,omitempty"`
}

func (a *API) reset(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Account string `json:"account"`
	}
	if !decode(w, r, maxSmallBody, &in, true) {
		return
	}
	if in.Account == "" {
		in.Account = r.URL.Query().Get("account")
	}
	if in.Account != "" && !accountRe.MatchString(in.Account) {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("account %q is not a 12-digit AWS account id", in.Account))
		return
	}
	if err := a.svc.Reset(in.Account); err != nil {
		a.domainErr(w, err, http.StatusBadRequest)
		return
	}
	a.log.Info("admin reset", "account", in.Account)
	writeJSON(w, http.StatusOK, ResetResult{Status: "ok", Account: in.Account})
}

// export answers the whole state as a snapshot document (version 2 of
// docs/snapshot-format.md, which holds the simulated HSMs' private keys).
func (a *API) export(w http.ResponseWriter, r *http.Request) {
	snap, err := a.svc.Export()
	if err != nil {
		a.domainErr(w, err, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := snapshot.Encode(&buf, snap); err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// ImportResult is the answer of POST import.
type ImportResult struct {
	Clusters int `json:"clusters"`
	Hsms     int `json:"hsms"`
	Backups  int `json:"backups"`
}

// Counts returns what a snapshot holds.
func Counts(snap *cloudhsm.Snapshot) ImportResult {
	res := ImportResult{Clusters: len(snap.Clusters), Backups: len(snap.Backups)}
	for _, c := range snap.Clusters {
		res.Hsms += len(c.Hsms)
	}
	return res
}

// importSnapshot reads a snapshot document of any version (the format's
// checks are internal/snapshot's) and imports it (the rules of what the
// service can hold are the domain's).
func (a *API) importSnapshot(w http.ResponseWriter, r *http.Request) {
	snap, err := snapshot.Decode(http.MaxBytesReader(w, r.Body, maxImportBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErr(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxImportBody))
			return
		}
		writeErr(w, http.StatusBadRequest, "invalid snapshot: "+err.Error())
		return
	}
	res := Counts(snap)
	if err := a.svc.Import(snap); err != nil {
		a.domainErr(w, err, http.StatusBadRequest)
		return
	}
	a.log.Info("admin import", "clusters", res.Clusters, "hsms", res.Hsms, "backups", res.Backups)
	writeJSON(w, http.StatusOK, res)
}

// ---- clusters and HSMs ----

// ClusterSummary is the answer of the cluster and HSM endpoints.
type ClusterSummary struct {
	ClusterID string       `json:"ClusterId"`
	State     string       `json:"State"`
	Hsms      []HsmSummary `json:"Hsms,omitempty"`
}

// HsmSummary is one HSM in a ClusterSummary.
type HsmSummary struct {
	HsmID string `json:"HsmId"`
	State string `json:"State"`
}

func summary(c *cloudhsm.Cluster) ClusterSummary {
	s := ClusterSummary{ClusterID: c.ID, State: c.State}
	for _, h := range c.Hsms {
		s.Hsms = append(s.Hsms, HsmSummary{HsmID: h.ID, State: h.State})
	}
	return s
}

func (a *API) activate(w http.ResponseWriter, r *http.Request) {
	var in Tenancy
	if !decode(w, r, maxSmallBody, &in, true) {
		return
	}
	t, ok := a.tenant(w, r, in)
	if !ok {
		return
	}
	c, err := a.svc.Activate(t, r.PathValue("id"))
	if err != nil {
		a.domainErr(w, err, http.StatusConflict)
		return
	}
	a.log.Info("admin activate", "account", t.Account, "region", t.Region, "cluster", c.ID)
	writeJSON(w, http.StatusOK, summary(c))
}

// HsmTarget names one HSM: the body of POST hsms/degrade and hsms/heal.
type HsmTarget struct {
	Account   string `json:"account,omitempty"`
	Region    string `json:"region,omitempty"`
	ClusterID string `json:"clusterId"`
	HsmID     string `json:"hsmId"`
}

func (a *API) degrade(w http.ResponseWriter, r *http.Request) {
	a.hsmOp(w, r, "degrade", a.svc.DegradeHsm)
}

func (a *API) heal(w http.ResponseWriter, r *http.Request) {
	a.hsmOp(w, r, "heal", a.svc.HealHsm)
}

func (a *API) hsmOp(w http.ResponseWriter, r *http.Request, name string, op func(cloudhsm.Tenant, string, string) (*cloudhsm.Cluster, error)) {
	var in HsmTarget
	if !decode(w, r, maxSmallBody, &in, true) {
		return
	}
	if in.ClusterID == "" {
		in.ClusterID = r.URL.Query().Get("clusterId")
	}
	if in.HsmID == "" {
		in.HsmID = r.URL.Query().Get("hsmId")
	}
	if in.ClusterID == "" || in.HsmID == "" {
		writeErr(w, http.StatusBadRequest, `body must name the HSM: {"clusterId": "cluster-...", "hsmId": "hsm-..."} (account and region optional)`)
		return
	}
	t, ok := a.tenant(w, r, Tenancy{Account: in.Account, Region: in.Region})
	if !ok {
		return
	}
	c, err := op(t, in.ClusterID, in.HsmID)
	if err != nil {
		a.domainErr(w, err, http.StatusConflict)
		return
	}
	a.log.Info("admin "+name, "account", t.Account, "region", t.Region, "cluster", in.ClusterID, "hsm", in.HsmID)
	writeJSON(w, http.StatusOK, summary(c))
}

// ---- clock ----

// ClockState is the answer of the clock endpoints.
type ClockState struct {
	Now    string  `json:"now"`
	Epoch  float64 `json:"epoch"`
	Frozen bool    `json:"frozen"`
	// Advance says what an advance did (POST clock/advance only).
	Advance *AdvanceSummary `json:"advance,omitempty"`
}

// AdvanceSummary is what an advance of the clock did.
type AdvanceSummary struct {
	From           string         `json:"from"`
	To             string         `json:"to"`
	Transitions    int            `json:"transitions"`
	BackupsTaken   int            `json:"backupsTaken"`
	BackupsExpired int            `json:"backupsExpired"`
	Removed        int            `json:"removed"`
	Changes        []ChangeRecord `json:"changes"`
}

// ChangeRecord is one change of the estate, as the admin API shows it.
type ChangeRecord struct {
	Resource  string `json:"resource"`
	ID        string `json:"id"`
	ClusterID string `json:"clusterId,omitempty"`
	Account   string `json:"account,omitempty"`
	Region    string `json:"region,omitempty"`
	From      string `json:"from"`
	To        string `json:"to"`
	At        string `json:"at"`
	Cause     string `json:"cause"`
}

func changeRecord(c cloudhsm.Change) ChangeRecord {
	return ChangeRecord{Resource: c.Resource, ID: c.ID, ClusterID: c.ClusterID, Account: c.Tenant.Account, Region: c.Tenant.Region,
		From: c.From, To: c.To, At: c.At.UTC().Format(time.RFC3339Nano), Cause: c.Cause}
}

// clockState is the clock right after this process changed it.
func (a *API) clockState() ClockState {
	return clockStateAt(a.svc.Clock().Now(), a.svc.Clock().Frozen())
}

func clockStateAt(now time.Time, frozen bool) ClockState {
	return ClockState{Now: now.UTC().Format(time.RFC3339Nano), Epoch: float64(now.UnixMilli()) / 1000, Frozen: frozen}
}

// clockGet reads the clock as a request reads the estate: with a shared
// store, a change made through another process is seen.
func (a *API) clockGet(w http.ResponseWriter, r *http.Request) {
	now, frozen, err := a.svc.ClockNow()
	if err != nil {
		a.domainErr(w, err, http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, clockStateAt(now, frozen))
}

func (a *API) clockAdvance(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Duration string `json:"duration"`
	}
	if !decode(w, r, maxSmallBody, &in, true) {
		return
	}
	if in.Duration == "" {
		in.Duration = r.URL.Query().Get("duration")
	}
	if in.Duration == "" {
		writeErr(w, http.StatusBadRequest, `body must be {"duration": "24h"} (a Go duration)`)
		return
	}
	d, err := time.ParseDuration(in.Duration)
	if err != nil || d < 0 {
		writeErr(w, http.StatusBadRequest, "duration must be a non-negative Go duration such as 90s, 15m or 24h")
		return
	}
	rep, err := a.svc.AdvanceClock(d)
	if err != nil {
		a.domainErr(w, err, http.StatusInternalServerError)
		return
	}
	st := a.clockState()
	sum := &AdvanceSummary{From: rep.From.UTC().Format(time.RFC3339Nano), To: rep.To.UTC().Format(time.RFC3339Nano),
		Transitions: rep.Transitions, BackupsTaken: rep.BackupsTaken, BackupsExpired: rep.BackupsExpired, Removed: rep.Removed,
		Changes: make([]ChangeRecord, 0, len(rep.Changes))}
	for _, c := range rep.Changes {
		sum.Changes = append(sum.Changes, changeRecord(c))
	}
	st.Advance = sum
	writeJSON(w, http.StatusOK, st)
}

func (a *API) clockFreeze(w http.ResponseWriter, r *http.Request) {
	if _, err := a.svc.FreezeClock(); err != nil {
		a.domainErr(w, err, http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, a.clockState())
}

func (a *API) clockResume(w http.ResponseWriter, r *http.Request) {
	if _, err := a.svc.ResumeClock(); err != nil {
		a.domainErr(w, err, http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, a.clockState())
}

func (a *API) clockRealTime(w http.ResponseWriter, r *http.Request) {
	if _, err := a.svc.RealTimeClock(); err != nil {
		a.domainErr(w, err, http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, a.clockState())
}

// ---- faults ----

// FaultRule is the body of POST faults.
type FaultRule struct {
	Operation   string          `json:"operation"`
	Account     string          `json:"account,omitempty"`
	Region      string          `json:"region,omitempty"`
	Error       string          `json:"error,omitempty"`
	Message     string          `json:"message,omitempty"`
	Latency     faults.Duration `json:"latency,omitempty"`
	Probability float64         `json:"probability,omitempty"`
	Count       int             `json:"count,omitempty"`
}

// faultRuleBody is FaultRule as decoded by the server: it tells an explicit
// 0 (refused) from an absent probability or count.
type faultRuleBody struct {
	FaultRule
	Probability *float64 `json:"probability,omitempty"`
	Count       *int     `json:"count,omitempty"`
}

// FaultList is the answer of GET faults.
type FaultList struct {
	Rules []faults.Rule `json:"rules"`
}

// Deleted is the answer of the DELETE endpoints.
type Deleted struct {
	Deleted int `json:"deleted"`
}

func (a *API) injector(w http.ResponseWriter) bool {
	if a.faults == nil {
		writeErr(w, http.StatusNotFound, "fault injection is not enabled on this server")
		return false
	}
	return true
}

func (a *API) faultsList(w http.ResponseWriter, r *http.Request) {
	if !a.injector(w) {
		return
	}
	writeJSON(w, http.StatusOK, FaultList{Rules: a.faults.Rules()})
}

func (a *API) faultsAdd(w http.ResponseWriter, r *http.Request) {
	if !a.injector(w) {
		return
	}
	var in faultRuleBody
	if !decode(w, r, maxSmallBody, &in, false) {
		return
	}
	// Absent means every call / no limit; an explicit 0 would mean the
	// same to the injector, the opposite of what its writer meant.
	if in.Probability != nil && !(*in.Probability > 0) {
		writeErr(w, http.StatusBadRequest, "invalid fault rule: probability must be in (0, 1]; leave it out for every matching call")
		return
	}
	if in.Count != nil && *in.Count <= 0 {
		writeErr(w, http.StatusBadRequest, "invalid fault rule: count must be positive; leave it out for no limit")
		return
	}
	rule := faults.Rule{
		Operation: in.Operation, Account: in.Account, Region: in.Region,
		Error: in.Error, Message: in.Message, Latency: in.Latency,
	}
	if in.Probability != nil {
		rule.Probability = *in.Probability
	}
	if in.Count != nil {
		rule.Count = *in.Count
	}
	rule, err := a.faults.Add(rule)
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, rule)
}

func (a *API) faultsClear(w http.ResponseWriter, r *http.Request) {
	if !a.injector(w) {
		return
	}
	n, err := a.faults.Clear()
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, Deleted{Deleted: n})
}

func (a *API) faultsGet(w http.ResponseWriter, r *http.Request) {
	if !a.injector(w) {
		return
	}
	rule, ok := a.faults.Get(r.PathValue("id"))
	if !ok {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no fault rule %q", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

func (a *API) faultsDelete(w http.ResponseWriter, r *http.Request) {
	if !a.injector(w) {
		return
	}
	ok, err := a.faults.Delete(r.PathValue("id"))
	if err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	if !ok {
		writeErr(w, http.StatusNotFound, fmt.Sprintf("no fault rule %q", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, Deleted{Deleted: 1})
}
