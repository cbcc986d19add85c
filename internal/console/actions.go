package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/api"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// The console's actions. Those that are AWS operations are run by the
// API's own handlers (Options.Invoke): the console builds the operation's
// JSON input and hands it over as the caller's tenant, so validation,
// rules and error texts are exactly what an AWS client gets. Those that
// are the admin API's are run by its own handlers (admin.API.Invoke).
// Nothing here changes the estate by another path.

// ActionResult is the answer of POST actions/{name}.
type ActionResult struct {
	OK      bool   `json:"ok"`
	Message string `json:"message"`
	// Code is the AWS error code (or the admin API's HTTP status) of a refusal.
	Code string `json:"code,omitempty"`
	// Location is the page to go to (a cluster just created).
	Location string    `json:"location,omitempty"`
	Download *Download `json:"download,omitempty"`
}

// Download is a file the result offers (the test CA's certificate).
type Download struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

type action func(ctx context.Context, f url.Values) ActionResult

const maxActionBody = 512 << 10

var accountRe = regexp.MustCompile(`^[0-9]{12}$`)

func (c *Console) actions() map[string]action {
	return map[string]action{
		"create-cluster": c.createCluster,
		"create-hsm": c.awsAction("CreateHsm", func(f url.Values) map[string]any {
			return omitEmpty(map[string]any{"ClusterId": f.Get("cluster"), "AvailabilityZone": f.Get("az"), "IpAddress": f.Get("ip")})
		}),
		"delete-hsm": c.awsAction("DeleteHsm", func(f url.Values) map[string]any {
			return map[string]any{"ClusterId": f.Get("cluster"), "HsmId": f.Get("hsm")}
		}),
		"initialize": c.awsAction("InitializeCluster", func(f url.Values) map[string]any {
			return map[string]any{"ClusterId": f.Get("cluster"), "SignedCert": f.Get("signedCert"), "TrustAnchor": f.Get("trustAnchor")}
		}),
		"initialize-test-ca": c.initializeWithTestCA,
		"delete-cluster":     c.awsAction("DeleteCluster", func(f url.Values) map[string]any { return map[string]any{"ClusterId": f.Get("cluster")} }),
		"modify-retention": c.awsAction("ModifyCluster", func(f url.Values) map[string]any {
			return map[string]any{"ClusterId": f.Get("cluster"), "BackupRetentionPolicy": map[string]string{"Type": "DAYS", "Value": f.Get("days")}}
		}),
		"tag": c.awsAction("TagResource", func(f url.Values) map[string]any {
			return map[string]any{"ResourceId": f.Get("resource"), "TagList": []map[string]string{{"Key": f.Get("key"), "Value": f.Get("value")}}}
		}),
		"untag": c.awsAction("UntagResource", func(f url.Values) map[string]any {
			return map[string]any{"ResourceId": f.Get("resource"), "TagKeyList": []string{f.Get("key")}}
		}),
		"delete-backup":  c.awsAction("DeleteBackup", func(f url.Values) map[string]any { return map[string]any{"BackupId": f.Get("backup")} }),
		"restore-backup": c.awsAction("RestoreBackup", func(f url.Values) map[string]any { return map[string]any{"BackupId": f.Get("backup")} }),
		"copy-backup": c.awsAction("CopyBackupToRegion", func(f url.Values) map[string]any {
			return map[string]any{"BackupId": f.Get("backup"), "DestinationRegion": f.Get("destination")}
		}),
		"activate": func(ctx context.Context, f url.Values) ActionResult {
			q := url.Values{"account": {f.Get("account")}, "region": {f.Get("region")}}
			return c.adminAction(ctx, "POST", "clusters/"+url.PathEscape(f.Get("cluster"))+"/activate?"+q.Encode(), nil, "Activated "+f.Get("cluster")+".")
		},
		"degrade": c.hsmAction("degrade", "marked DEGRADED"),
		"heal":    c.hsmAction("heal", "healed"),
		"clock-advance": func(ctx context.Context, f url.Values) ActionResult {
			return c.adminAction(ctx, "POST", "clock/advance", map[string]string{"duration": f.Get("duration")}, "The clock advanced by "+f.Get("duration")+".")
		},
		"clock-freeze": func(ctx context.Context, f url.Values) ActionResult {
			return c.adminAction(ctx, "POST", "clock/freeze", nil, "The clock is frozen.")
		},
		"clock-resume": func(ctx context.Context, f url.Values) ActionResult {
			return c.adminAction(ctx, "POST", "clock/resume", nil, "The clock follows real time again.")
		},
		"fault-add": c.addFault,
		"fault-delete": func(ctx context.Context, f url.Values) ActionResult {
			return c.faultsChanged(c.adminAction(ctx, "DELETE", "faults/"+url.PathEscape(f.Get("id")), nil, "Fault rule "+f.Get("id")+" deleted."))
		},
		"faults-clear": func(ctx context.Context, f url.Values) ActionResult {
			return c.faultsChanged(c.adminAction(ctx, "DELETE", "faults", nil, "Every fault rule is cleared."))
		},
		"reset": c.reset,
	}
}

// action answers POST actions/{name}.
func (c *Console) action(w http.ResponseWriter, r *http.Request) {
	act, ok := c.acts[r.PathValue("name")]
	if !ok {
		writeResult(w, http.StatusNotFound, ActionResult{Message: fmt.Sprintf("no console action %q", r.PathValue("name"))})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxActionBody)
	if err := r.ParseForm(); err != nil {
		writeResult(w, http.StatusBadRequest, ActionResult{Message: "read the form: " + err.Error()})
		return
	}
	res := act(r.Context(), r.PostForm)
	c.log.Info("console action", "action", r.PathValue("name"), "ok", res.OK, "code", res.Code, "remote", r.RemoteAddr)
	// A refusal is an answer, not a failed request: 200 either way.
	writeResult(w, http.StatusOK, res)
}

func writeResult(w http.ResponseWriter, status int, res ActionResult) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(res)
}

// tenant reads and checks the form's account and region, as the wire's
// authentication would: a 12-digit account, a known region.
func (c *Console) tenant(f url.Values) (cloudhsm.Tenant, *ActionResult) {
	t := cloudhsm.Tenant{Account: strings.TrimSpace(f.Get("account")), Region: strings.TrimSpace(f.Get("region"))}
	if t.Account == "" {
		t.Account = c.defaultAccount
	}
	if t.Region == "" {
		t.Region = c.defaultRegion
	}
	if !accountRe.MatchString(t.Account) {
		return t, &ActionResult{Message: fmt.Sprintf("Account %q is not a 12-digit AWS account id.", t.Account)}
	}
	if !cloudhsm.KnownRegion(t.Region) {
		return t, &ActionResult{Code: "InvalidSignatureException", Message: fmt.Sprintf("Credential should be scoped to a valid region, not '%s'. ", t.Region)}
	}
	return t, nil
}

// call runs an AWS operation through the API's handler as t, and decodes
// its answer into out (when not nil).
func (c *Console) call(ctx context.Context, t cloudhsm.Tenant, op string, in any, out any) *ActionResult {
	body, err := json.Marshal(in)
	if err != nil {
		return &ActionResult{Message: "encode the request: " + err.Error()}
	}
	status, resp := c.invoke(ctx, op, &api.Caller{Tenant: t}, body)
	if status != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"Message"`
		}
		_ = json.Unmarshal(resp, &e)
		return &ActionResult{Code: e.Type, Message: e.Message}
	}
	if out != nil {
		if err := json.Unmarshal(resp, out); err != nil {
			return &ActionResult{Message: "decode the answer: " + err.Error()}
		}
	}
	return nil
}

func (c *Console) awsAction(op string, input func(url.Values) map[string]any) action {
	return func(ctx context.Context, f url.Values) ActionResult {
		t, bad := c.tenant(f)
		if bad != nil {
			return *bad
		}
		if ref := c.call(ctx, t, op, input(f), nil); ref != nil {
			return *ref
		}
		return ActionResult{OK: true, Message: op + " succeeded."}
	}
}

func omitEmpty(m map[string]any) map[string]any {
	for k, v := range m {
		if s, ok := v.(string); ok && s == "" {
			delete(m, k)
		}
	}
	return m
}

// subnetIDs gathers the subnets a create form names: the boxes ticked and
// the ids typed (separated by spaces or commas), in order, once each.
func subnetIDs(f url.Values) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range append(f["subnet"], strings.FieldsFunc(f.Get("subnets"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' })...) {
		if v = strings.TrimSpace(v); v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func (c *Console) createCluster(ctx context.Context, f url.Values) ActionResult {
	t, bad := c.tenant(f)
	if bad != nil {
		return *bad
	}
	in := omitEmpty(map[string]any{"HsmType": f.Get("hsmType"), "Mode": f.Get("mode"), "NetworkType": f.Get("networkType"), "SourceBackupId": f.Get("sourceBackupId")})
	in["SubnetIds"] = subnetIDs(f)
	if k := f.Get("tagKey"); k != "" {
		in["TagList"] = []map[string]string{{"Key": k, "Value": f.Get("tagValue")}}
	}
	var out struct {
		Cluster struct{ ClusterId, State string }
	}
	if ref := c.call(ctx, t, "CreateCluster", in, &out); ref != nil {
		return *ref
	}
	return ActionResult{OK: true, Message: fmt.Sprintf("Cluster %s created: %s.", out.Cluster.ClusterId, out.Cluster.State),
		Location: clusterURL(out.Cluster.ClusterId, t)}
}

// initializeWithTestCA signs the cluster's CSR with a CA made for the
// occasion and initializes the cluster with it, through InitializeCluster.
func (c *Console) initializeWithTestCA(ctx context.Context, f url.Values) ActionResult {
	t, bad := c.tenant(f)
	if bad != nil {
		return *bad
	}
	id := f.Get("cluster")
	views := c.estate.clusters(id, t.Account, t.Region)
	if len(views) == 0 || views[0].Shown.ClusterCsr == "" {
		// Nothing to sign: InitializeCluster says why, in AWS's words (an
		// unknown cluster, a state that is not UNINITIALIZED, no CSR yet),
		// before it reads the certificates.
		if ref := c.call(ctx, t, "InitializeCluster", map[string]any{"ClusterId": id, "SignedCert": "-", "TrustAnchor": "-"}, nil); ref != nil {
			return *ref
		}
		return ActionResult{Message: fmt.Sprintf("Cluster %s has no CSR to sign.", id)}
	}
	// Valid around both the server's clock and the real time (the
	// service checks at the later of them).
	from, until := c.svc.Clock().Now(), time.Now()
	if until.Before(from) {
		from, until = until, from
	}
	signed, anchor, err := signWithTestCA(views[0].Csr, from.Add(-time.Hour), until.AddDate(10, 0, 0))
	if err != nil {
		return ActionResult{Message: err.Error()}
	}
	if ref := c.call(ctx, t, "InitializeCluster", map[string]any{"ClusterId": id, "SignedCert": signed, "TrustAnchor": anchor}, nil); ref != nil {
		return *ref
	}
	return ActionResult{OK: true, Message: fmt.Sprintf("Cluster %s is initializing, signed by a test CA made for it (its key is not kept; keep its certificate as the trust anchor, customerCA.crt).", id),
		Download: &Download{Name: "customerCA.crt", Text: anchor}}
}

// adminAction runs an admin API endpoint through its own handler.
func (c *Console) adminAction(ctx context.Context, method, path string, in any, done string) ActionResult {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return ActionResult{Message: "encode the request: " + err.Error()}
		}
		body = b
	}
	status, resp := c.admin.Invoke(ctx, method, path, body)
	if status >= 400 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(resp, &e)
		return ActionResult{Code: strconv.Itoa(status), Message: e.Error}
	}
	return ActionResult{OK: true, Message: done}
}

func (c *Console) hsmAction(name, done string) action {
	return func(ctx context.Context, f url.Values) ActionResult {
		in := map[string]string{"account": f.Get("account"), "region": f.Get("region"), "clusterId": f.Get("cluster"), "hsmId": f.Get("hsm")}
		return c.adminAction(ctx, "POST", "hsms/"+name, in, fmt.Sprintf("HSM %s %s.", f.Get("hsm"), done))
	}
}

func (c *Console) faultsChanged(r ActionResult) ActionResult {
	if r.OK {
		c.hub.touchFaults()
	}
	return r
}

// addFault sends the form as the admin API's fault rule: numbers as
// numbers when they read as such, else as typed (for the API to refuse).
func (c *Console) addFault(ctx context.Context, f url.Values) ActionResult {
	in := map[string]any{}
	for _, k := range []string{"operation", "account", "region", "error", "message", "latency"} {
		if v := strings.TrimSpace(f.Get(k)); v != "" {
			in[k] = v
		}
	}
	if v := strings.TrimSpace(f.Get("probability")); v != "" {
		if p, err := strconv.ParseFloat(v, 64); err == nil {
			in["probability"] = p
		} else {
			in["probability"] = v
		}
	}
	if v := strings.TrimSpace(f.Get("count")); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			in["count"] = n
		} else {
			in["count"] = v
		}
	}
	return c.faultsChanged(c.adminAction(ctx, "POST", "faults", in, "Fault rule added for "+f.Get("operation")+"."))
}

func (c *Console) reset(ctx context.Context, f url.Values) ActionResult {
	if f.Get("confirm") != "yes" {
		return ActionResult{Message: "Tick the box to confirm: a reset deletes clusters, HSMs and backups for good."}
	}
	account := strings.TrimSpace(f.Get("account"))
	done := "Every account was reset."
	if account != "" {
		done = "Account " + account + " was reset."
	}
	return c.adminAction(ctx, "POST", "reset", map[string]string{"account": account}, done)
}
