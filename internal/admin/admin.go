// Package admin owns the admin API of cloudhsm-local under /_cloudhsm-local/:
// JSON over HTTP for what AWS does out of band (activating a cluster on its
// HSM, the simulated roots) and for test control (the clock).
package admin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// Prefix is where the admin API lives on the server's listener.
const Prefix = "/_cloudhsm-local/"

// API is the admin HTTP handler.
type API struct {
	svc *cloudhsm.Service
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the admin API for svc.
func New(svc *cloudhsm.Service, log *slog.Logger) *API {
	a := &API{svc: svc, log: log, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET "+Prefix+"health", a.health)
	a.mux.HandleFunc("GET "+Prefix+"roots/manufacturer.pem", a.manufacturerRoot)
	a.mux.HandleFunc("GET "+Prefix+"roots/aws.pem", a.awsRoot)
	a.mux.HandleFunc("POST "+Prefix+"clusters/{id}/activate", a.activate)
	a.mux.HandleFunc("GET "+Prefix+"clock", a.clockGet)
	a.mux.HandleFunc("POST "+Prefix+"clock/advance", a.clockAdvance)
	a.mux.HandleFunc("POST "+Prefix+"clock/freeze", a.clockFreeze)
	a.mux.HandleFunc("POST "+Prefix+"clock/resume", a.clockResume)
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "time": a.svc.Clock().Now().UTC().Format(time.RFC3339Nano)})
}

func (a *API) manufacturerRoot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write([]byte(a.svc.Authority().ManufacturerRootPEM()))
}

func (a *API) awsRoot(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write([]byte(a.svc.Authority().AWSRootPEM()))
}

// tenantOf reads ?account=&region= (defaults: the server's defaults).
func tenantOf(r *http.Request) cloudhsm.Tenant {
	t := cloudhsm.Tenant{Account: r.URL.Query().Get("account"), Region: r.URL.Query().Get("region")}
	if t.Account == "" {
		t.Account = "123456789012"
	}
	if t.Region == "" {
		t.Region = "us-east-1"
	}
	return t
}

func (a *API) activate(w http.ResponseWriter, r *http.Request) {
	c, err := a.svc.Activate(tenantOf(r), r.PathValue("id"))
	if err != nil {
		var de *cloudhsm.Error
		if errors.As(err, &de) {
			status := http.StatusConflict
			if de.Kind == cloudhsm.KindNotFound {
				status = http.StatusNotFound
			}
			writeErr(w, status, de.Message)
			return
		}
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"ClusterId": c.ID, "State": c.State})
}

func (a *API) clockState() map[string]any {
	now := a.svc.Clock().Now()
	return map[string]any{"now": now.UTC().Format(time.RFC3339Nano), "epoch": float64(now.UnixMilli()) / 1000, "frozen": a.svc.Clock().Frozen()}
}

func (a *API) clockGet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.clockState())
}

func (a *API) clockAdvance(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Duration string `json:"duration"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&in); err != nil && r.URL.Query().Get("duration") == "" {
		writeErr(w, http.StatusBadRequest, `body must be {"duration": "24h"} (a Go duration)`)
		return
	}
	if in.Duration == "" {
		in.Duration = r.URL.Query().Get("duration")
	}
	d, err := time.ParseDuration(in.Duration)
	if err != nil || d < 0 {
		writeErr(w, http.StatusBadRequest, "duration must be a non-negative Go duration such as 90s, 15m or 24h")
		return
	}
	a.svc.Clock().Advance(d)
	if err := a.svc.CatchUp(); err != nil {
		writeErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a.clockState())
}

func (a *API) clockFreeze(w http.ResponseWriter, r *http.Request) {
	a.svc.Clock().Freeze()
	writeJSON(w, http.StatusOK, a.clockState())
}

func (a *API) clockResume(w http.ResponseWriter, r *http.Request) {
	a.svc.Clock().Resume()
	writeJSON(w, http.StatusOK, a.clockState())
}
