package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/faults"
)

// pageSize is how many clusters the landing page lists at once.
const pageSize = 25

func tenantQuery(t cloudhsm.Tenant) string {
	return url.Values{"account": {t.Account}, "region": {t.Region}}.Encode()
}

func clusterURL(id string, t cloudhsm.Tenant) string {
	return Prefix + "clusters/" + url.PathEscape(id) + "?" + tenantQuery(t)
}

func backupURL(id string, t cloudhsm.Tenant) string {
	return Prefix + "backups/" + url.PathEscape(id) + "?" + tenantQuery(t)
}

func eventsURL(pageName, id string) string {
	q := url.Values{"page": {pageName}}
	if id != "" {
		q.Set("id", id)
	}
	return Prefix + "events?" + q.Encode()
}

const timeLayout = "2006-01-02 15:04:05Z07:00"

// funcs are the templates' functions. They hold no state of a console:
// the templates are parsed once for the process (see shared).
func funcs(assets map[string]asset) template.FuncMap {
	return template.FuncMap{
		"base":  func() string { return Prefix },
		"asset": func(name string) string { return Prefix + "assets/" + assets[name].hashedName },
		"time": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format(timeLayout)
		},
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"rel": func(t, now time.Time) string {
			if t.IsZero() {
				return ""
			}
			d := t.Sub(now)
			if d >= 0 {
				return "in " + human(d)
			}
			return human(-d) + " ago"
		},
		"clusterURL": clusterURL,
		"backupURL":  backupURL,
		"tenantURL": func(t cloudhsm.Tenant) string {
			return Prefix + "?" + tenantQuery(t)
		},
		"stateClass": func(s string) string {
			switch s {
			case "ACTIVE", "READY":
				return "ok"
			case "DEGRADED", "DELETED", "PENDING_DELETION":
				return "bad"
			case "UNINITIALIZED", "INITIALIZED":
				return "wait"
			}
			return "busy"
		},
		"counts": func(m map[string]int) []stateCount { return sortedCounts(m) },
		"ms": func(d time.Duration) string {
			return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64)
		},
		"pretty":   prettyJSON,
		"states":   func() []string { return cloudhsm.ClusterStates },
		"seqURL":   func(seq uint64) string { return Prefix + "requests/" + strconv.FormatUint(seq, 10) },
		"fmtFloat": func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) },
		"dur":      func(d faults.Duration) string { return time.Duration(d).String() },
	}
}

// human writes a duration as people read it: 90d, 3d 4h, 5h 12m, 42s.
func human(d time.Duration) string {
	d = d.Round(time.Second)
	days, hours, mins := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case days >= 10:
		return fmt.Sprintf("%dd", days)
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm %ds", mins, int(d%time.Minute/time.Second))
	}
	return d.String()
}

type stateCount struct {
	State string
	N     int
}

func sortedCounts(m map[string]int) []stateCount {
	out := make([]stateCount, 0, len(m))
	for k, v := range m {
		out = append(out, stateCount{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].State < out[j].State })
	return out
}

// ---- the estate ----

type estateData struct {
	Query       ClusterQuery
	Overview    Overview
	Faults      []faults.Rule
	FaultsOn    bool
	Operations  []string
	Subnets     []SubnetChoice
	Account     string
	Region      string
	Older       string
	Newer       string
	Newest      string
	Filtered    bool
	RequestsOn  bool
	HsmTypes    []string
	Modes       []string
	FaultErrors []string
	Regions     []string
	Now         time.Time
}

func (c *Console) estatePage(w http.ResponseWriter, r *http.Request) {
	c.cached(w, r, func() (int, page) {
		q := r.URL.Query()
		cq := ClusterQuery{Account: q.Get("account"), Region: q.Get("region"), State: q.Get("state"), HsmType: q.Get("hsmType"), Mode: q.Get("mode"), Limit: pageSize}
		cq.Before, _ = strconv.ParseUint(q.Get("before"), 10, 64)
		cq.After, _ = strconv.ParseUint(q.Get("after"), 10, 64)
		d := estateData{Query: cq, Overview: c.estate.overview(cq), Account: c.defaultAccount, Region: c.defaultRegion,
			RequestsOn: c.requests != nil, HsmTypes: []string{cloudhsm.HsmTypeHsm2m, cloudhsm.HsmTypeHsm1}, Modes: []string{cloudhsm.ModeFIPS, cloudhsm.ModeNonFIPS},
			FaultErrors: []string{"ThrottlingException", "CloudHsmInternalFailureException", "CloudHsmServiceException"}, Regions: cloudhsm.Regions(),
			Now: c.svc.Clock().Now()}
		d.Filtered = cq.Account != "" || cq.Region != "" || cq.State != "" || cq.HsmType != "" || cq.Mode != ""
		d.Subnets = append(slices.Clone(c.topology), d.Overview.Subnets...)
		if c.faults != nil {
			d.FaultsOn, d.Faults, d.Operations = true, c.faults.Rules(), c.faults.Operations()
		}
		page := func(key string, v uint64) string {
			if v == 0 {
				return ""
			}
			pq := url.Values{}
			for _, k := range []string{"account", "region", "state", "hsmType", "mode"} {
				if q.Get(k) != "" {
					pq.Set(k, q.Get(k))
				}
			}
			if key != "" {
				pq.Set(key, strconv.FormatUint(v, 10))
			}
			return Prefix + "?" + pq.Encode()
		}
		d.Older, d.Newer = page("before", d.Overview.Older), page("after", d.Overview.Newer)
		if cq.Before != 0 || cq.After != 0 {
			d.Newest = page("", 1)
		}
		return http.StatusOK, page2("Estate", "estate", "", d)
	})
}

func page2(title, name, id string, data any) page {
	return page{Title: title, Page: name, ID: id, Events: eventsURL(name, id), Data: data}
}

// ---- a cluster ----

type clusterData struct {
	C            ClusterView
	Certs        []CertView
	Backups      []*cloudhsm.Backup
	AZs          []string
	TenantQuery  string
	CanInit      bool
	CertsChecked time.Time
	Now          time.Time
}

type chooseData struct {
	Kind, ID string
	Choices  []choice
}

type choice struct {
	Tenant cloudhsm.Tenant
	URL    string
	State  string
}

// notOnePage is the page for a cluster or backup id (kind) that no tenant
// holds, or more than one (an import can make that: the page offers each);
// notOne is false when exactly one holds it.
func notOnePage(kind, id string, choices []choice) (status int, p page, notOne bool) {
	switch len(choices) {
	case 1:
		return 0, page{}, false
	case 0:
		heading := "No " + kind + " " + id
		return http.StatusNotFound, page{Title: heading, Page: "message", Events: eventsURL("estate", ""), Data: messageData{heading,
			"No account or region holds a " + kind + " " + id + " (any more: a DELETED " + kind + " stays visible for --deleted-retention, then it is gone)."}}, true
	}
	return http.StatusOK, page2(id, "choose", "", chooseData{Kind: kind, ID: id, Choices: choices}), true
}

func (c *Console) clusterPage(w http.ResponseWriter, r *http.Request) {
	c.cached(w, r, func() (int, page) {
		id, q := r.PathValue("id"), r.URL.Query()
		views := c.estate.clusters(id, q.Get("account"), q.Get("region"))
		choices := make([]choice, len(views))
		for i, v := range views {
			choices[i] = choice{v.Tenant, clusterURL(id, v.Tenant), v.State}
		}
		if status, p, notOne := notOnePage("cluster", id, choices); notOne {
			return status, p
		}
		v := views[0]
		d := clusterData{C: v, TenantQuery: tenantQuery(v.Tenant), CanInit: v.Initializable, Now: c.svc.Clock().Now()}
		for _, s := range v.Subnets {
			d.AZs = append(d.AZs, s.AZ)
		}
		d.Backups = c.estate.backupsOf(v.Tenant, cloudhsm.BackupFilter{ClusterIDs: []string{id}})
		slices.Reverse(d.Backups)
		d.CertsChecked = c.svc.CertificateTime()
		if roots, err := c.svc.Authority(); err == nil {
			d.Certs = clusterCerts(v, roots.AWSRootPEM(), roots.ManufacturerRootPEM(), d.CertsChecked)
		}
		return http.StatusOK, page2(id, "cluster", id, d)
	})
}

// certFile downloads one of a cluster's certificates as PEM.
func (c *Console) certFile(w http.ResponseWriter, r *http.Request) {
	id, q := r.PathValue("id"), r.URL.Query()
	views := c.estate.clusters(id, q.Get("account"), q.Get("region"))
	if len(views) != 1 {
		http.Error(w, "no single cluster "+id+": name its account and region", http.StatusNotFound)
		return
	}
	roots, err := c.svc.Authority()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	name := strings.TrimSuffix(r.PathValue("file"), ".pem")
	for _, cv := range clusterCerts(views[0], roots.AWSRootPEM(), roots.ManufacturerRootPEM(), c.svc.CertificateTime()) {
		if cv.Name == name {
			w.Header().Set("Content-Type", "application/x-pem-file")
			w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+"-"+name+".pem"))
			_, _ = w.Write([]byte(cv.PEM))
			return
		}
	}
	http.Error(w, "cluster "+id+" has no "+name+" now", http.StatusNotFound)
}

// ---- a backup ----

type backupData struct {
	B         *cloudhsm.Backup
	ARN       string
	Lineage   Lineage
	Policy    string
	SharedTo  []string
	Regions   []string
	Source    string // URL of the source backup (a copy)
	ClusterOK bool
	Now       time.Time
}

func (c *Console) backupPage(w http.ResponseWriter, r *http.Request) {
	c.cached(w, r, func() (int, page) {
		id, q := r.PathValue("id"), r.URL.Query()
		bs := c.estate.backups(id, q.Get("account"), q.Get("region"))
		choices := make([]choice, len(bs))
		for i, b := range bs {
			choices[i] = choice{b.Tenant, backupURL(id, b.Tenant), b.State}
		}
		if status, p, notOne := notOnePage("backup", id, choices); notOne {
			return status, p
		}
		b := bs[0]
		d := backupData{B: b, ARN: b.ARN(), Lineage: c.estate.lineage(b), Policy: prettyJSON([]byte(b.Policy)), SharedTo: b.SharedAccounts(), Regions: cloudhsm.CopyTargets(b.Tenant.Region), Now: c.svc.Clock().Now()}
		if b.SourceBackup != "" && b.SourceRegion != "" {
			d.Source = backupURL(b.SourceBackup, cloudhsm.Tenant{Account: b.Tenant.Account, Region: b.SourceRegion})
		}
		d.ClusterOK = len(c.estate.clusters(b.ClusterID, b.Tenant.Account, b.Tenant.Region)) == 1
		return http.StatusOK, page2(id, "backup", id, d)
	})
}

// ---- requests ----

type requestsData struct {
	On         bool
	Size       int
	Filter     CallFilter
	Calls      []Call
	Operations []string
	Accounts   []string
	Codes      []string
}

func (c *Console) requestsPage(w http.ResponseWriter, r *http.Request) {
	c.cached(w, r, func() (int, page) {
		q := r.URL.Query()
		d := requestsData{On: c.requests != nil, Filter: CallFilter{Operation: q.Get("operation"), Account: q.Get("account"), Error: q.Get("error")}}
		if c.requests != nil {
			d.Size = c.requests.Size()
			all := c.requests.Calls(CallFilter{})
			ops, accts, codes := map[string]bool{}, map[string]bool{}, map[string]bool{}
			for _, call := range all {
				ops[call.Operation], accts[call.Account], codes[call.Code] = true, true, true
				if d.Filter.match(&call) {
					d.Calls = append(d.Calls, call)
				}
			}
			d.Operations, d.Accounts, d.Codes = keys(ops), keys(accts), keys(codes)
		}
		return http.StatusOK, page2("Requests", "requests", "", d)
	})
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (c *Console) callPage(w http.ResponseWriter, r *http.Request) {
	seq, _ := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	var call Call
	ok := false
	if c.requests != nil {
		call, ok = c.requests.Call(seq)
	}
	if !ok {
		text := "The request log is off (--request-log 0)."
		if c.requests != nil {
			text = fmt.Sprintf("The request log no longer holds call %s: it keeps the last %d calls of this process.", r.PathValue("seq"), c.requests.Size())
		}
		c.message(w, r, http.StatusNotFound, "Call not kept", text)
		return
	}
	c.render(w, r, http.StatusOK, page{Title: call.Operation, Page: "call", Data: call})
}

// prettyJSON indents a JSON body for reading; anything else is shown as is.
func prettyJSON(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return string(b)
	}
	return out.String()
}
