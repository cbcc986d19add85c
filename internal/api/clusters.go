package api

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

type retentionIn struct {
	Type  string
	Value string
}

func retentionDays(p *retentionIn) (int, error) {
	if p == nil {
		return 0, nil
	}
	if p.Type == "" || p.Value == "" {
		return 0, invalid("BackupRetentionPolicy needs both Type (DAYS) and Value (a number of days between %d and %d).", cloudhsm.MinRetentionDays, cloudhsm.MaxRetentionDays)
	}
	n, err := strconv.Atoi(p.Value)
	if err != nil {
		return 0, invalid("BackupRetentionPolicy Value %q is not a number of days.", p.Value)
	}
	// Checked here as well as by the operation, so that "0" is refused
	// rather than taken for "absent".
	if err := cloudhsm.CheckRetention(n); err != nil {
		return 0, err
	}
	return n, nil
}

func (a *API) createCluster(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		BackupRetentionPolicy *retentionIn
		HsmType               string
		SourceBackupId        string
		SubnetIds             []string
		NetworkType           string
		TagList               []tagIn
		Mode                  string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	days, err := retentionDays(in.BackupRetentionPolicy)
	if err != nil {
		return nil, err
	}
	cl, err := a.svc.CreateCluster(ctx, c.Tenant, cloudhsm.CreateClusterInput{
		HsmType:        in.HsmType,
		SubnetIDs:      in.SubnetIds,
		Mode:           in.Mode,
		NetworkType:    in.NetworkType,
		RetentionDays:  days,
		SourceBackupID: in.SourceBackupId,
		Tags:           tagsIn(in.TagList),
	})
	if err != nil {
		return nil, err
	}
	return struct {
		Cluster clusterJSON `json:"Cluster"`
	}{clusterToJSON(cl)}, nil
}

// DefaultClustersPerPage is DescribeClusters' page size when MaxResults is absent.
const DefaultClustersPerPage = 25

var clusterFilterKeys = []string{"clusterIds", "states", "vpcIds"}

// checkFilterKeys refuses filter keys outside the allowed set.
func checkFilterKeys(op string, filters map[string][]string, allowed []string) error {
	for k := range filters {
		if !slices.Contains(allowed, k) {
			return invalid("Invalid filter key '%s' for %s. Valid filter keys are: %s.", k, op, strings.Join(allowed, ", "))
		}
	}
	return nil
}

// filterQuery returns a canonical, unambiguous encoding of the operation
// and its (checked) filters (JSON of the sorted keys and values), which
// pagination tokens are bound to. It is computed only when a token is read
// or made.
func filterQuery(op string, filters map[string][]string, extra ...string) string {
	type kv struct {
		K string
		V []string
	}
	canon := struct {
		Op    string
		F     []kv
		Extra []string
	}{Op: op, Extra: extra}
	for k, v := range filters {
		if v == nil {
			continue
		}
		vals := slices.Clone(v)
		sort.Strings(vals)
		canon.F = append(canon.F, kv{k, slices.Compact(vals)})
	}
	slices.SortFunc(canon.F, func(a, b kv) int { return strings.Compare(a.K, b.K) })
	b, _ := json.Marshal(canon) // strings and slices of strings always marshal
	return string(b)
}

func checkEnumFilter(key string, vals, allowed []string) error {
	for _, v := range vals {
		if !slices.Contains(allowed, v) {
			return invalid("Invalid value '%s' for filter %s. Valid values are: %s.", v, key, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func pageSize(p *int32, def int) int {
	if p == nil {
		return def
	}
	return int(*p)
}

func (a *API) describeClusters(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		Filters    map[string][]string
		NextToken  string
		MaxResults *int32
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkFilterKeys("DescribeClusters", in.Filters, clusterFilterKeys); err != nil {
		return nil, err
	}
	filters := nonEmptyFilters(in.Filters)
	query := func() string { return filterQuery("DescribeClusters", filters) }
	if err := checkEnumFilter("states", filters["states"], cloudhsm.ClusterStates); err != nil {
		return nil, err
	}
	var after uint64
	if in.NextToken != "" {
		var err error
		if after, err = a.tokens.readSeq(in.NextToken, query(), c.Tenant); err != nil {
			return nil, err
		}
	}
	f := cloudhsm.ClusterFilter{IDs: filters["clusterIds"], VpcIDs: filters["vpcIds"], States: filters["states"]}
	// The page is assembled from each cluster's cached JSON, in a buffer
	// the wire hands back to the pool once written.
	page := a.pages.get()
	buf := append(page.b[:0], `{"Clusters":[`...)
	n := 0
	var encErr error
	next, err := a.svc.VisitClusters(c.Tenant, f, after, pageSize(in.MaxResults, DefaultClustersPerPage), func(cl *cloudhsm.Cluster) {
		b, err := a.clusters.encode(cl)
		if err != nil {
			encErr = err
			return
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, b...)
		n++
	})
	if err == nil {
		err = encErr
	}
	if err != nil {
		page.Release()
		return nil, err
	}
	buf = append(buf, ']')
	if next != 0 {
		buf = append(buf, `,"NextToken":"`...)
		buf = append(buf, a.tokens.makeSeq(query(), c.Tenant, next)...)
		buf = append(buf, '"')
	}
	buf = append(buf, '}')
	page.b = buf
	return page, nil
}

func (a *API) modifyCluster(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		HsmType               string
		BackupRetentionPolicy *retentionIn
		ClusterId             string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	days, err := retentionDays(in.BackupRetentionPolicy)
	if err != nil {
		return nil, err
	}
	if days == 0 && in.HsmType == "" {
		return nil, invalid("ModifyCluster needs BackupRetentionPolicy or HsmType: there is nothing to change.")
	}
	cl, err := a.svc.ModifyCluster(c.Tenant, cloudhsm.ModifyClusterInput{ClusterID: in.ClusterId, RetentionDays: days, HsmType: in.HsmType})
	if err != nil {
		return nil, err
	}
	return struct {
		Cluster clusterJSON `json:"Cluster"`
	}{clusterToJSON(cl)}, nil
}

func (a *API) deleteCluster(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct{ ClusterId string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	cl, err := a.svc.DeleteCluster(c.Tenant, in.ClusterId)
	if err != nil {
		return nil, err
	}
	return struct {
		Cluster clusterJSON `json:"Cluster"`
	}{clusterToJSON(cl)}, nil
}

func (a *API) initializeCluster(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		ClusterId   string
		SignedCert  string
		TrustAnchor string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	cl, err := a.svc.InitializeCluster(c.Tenant, in.ClusterId, in.SignedCert, in.TrustAnchor)
	if err != nil {
		return nil, err
	}
	return struct {
		State        string `json:"State"`
		StateMessage string `json:"StateMessage,omitempty"`
	}{cl.State, cl.StateMessage}, nil
}

func (a *API) createHsm(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		ClusterId        string
		AvailabilityZone string
		IpAddress        string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	h, err := a.svc.CreateHsm(ctx, c.Tenant, cloudhsm.CreateHsmInput{ClusterID: in.ClusterId, AZ: in.AvailabilityZone, IPAddress: in.IpAddress})
	if err != nil {
		return nil, err
	}
	return struct {
		Hsm hsmJSON `json:"Hsm"`
	}{hsmToJSON(in.ClusterId, h)}, nil
}

func (a *API) deleteHsm(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		ClusterId string
		HsmId     string
		EniId     string
		EniIp     string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	id, err := a.svc.DeleteHsm(c.Tenant, cloudhsm.DeleteHsmInput{ClusterID: in.ClusterId, HsmID: in.HsmId, EniID: in.EniId, EniIP: in.EniIp})
	if err != nil {
		return nil, err
	}
	return struct {
		HsmId string `json:"HsmId"`
	}{id}, nil
}

// nonEmptyFilters drops the keys with no value at all: an empty list
// filters nothing, like an absent key. (A null in a filter, as the value of
// a key or inside its list, never gets here: the model's check refuses it.)
// An empty string is a value like any other and is kept.
func nonEmptyFilters(f map[string][]string) map[string][]string {
	for k, v := range f {
		if len(v) == 0 {
			delete(f, k)
		}
	}
	return f
}
