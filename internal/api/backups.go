package api

import (
	"context"
	"strconv"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// DefaultBackupsPerPage is DescribeBackups' page size when MaxResults is absent.
const DefaultBackupsPerPage = 50

var backupFilterKeys = []string{"backupIds", "clusterIds", "neverExpires", "sourceBackupIds", "states"}

func (a *API) describeBackups(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		NextToken     string
		MaxResults    *int32
		Filters       map[string][]string
		Shared        bool
		SortAscending bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkFilterKeys("DescribeBackups", in.Filters, backupFilterKeys); err != nil {
		return nil, err
	}
	filters := nonEmptyFilters(in.Filters)
	query := filterQuery("DescribeBackups", filters,
		"shared="+strconv.FormatBool(in.Shared), "asc="+strconv.FormatBool(in.SortAscending))
	if err := checkEnumFilter("states", filters["states"], cloudhsm.BackupStates); err != nil {
		return nil, err
	}
	f := cloudhsm.BackupFilter{
		IDs:        filters["backupIds"],
		SourceIDs:  filters["sourceBackupIds"],
		ClusterIDs: filters["clusterIds"],
		States:     filters["states"],
	}
	if v, ok := filters["neverExpires"]; ok && v != nil {
		if len(v) != 1 || (v[0] != "true" && v[0] != "false") {
			return nil, invalid("The neverExpires filter takes exactly one value, \"true\" or \"false\".")
		}
		b := v[0] == "true"
		f.NeverExpires = &b
	}
	var after uint64
	if in.NextToken != "" {
		var err error
		if after, err = a.tokens.readSeq(in.NextToken, query, c.Tenant); err != nil {
			return nil, err
		}
	}
	backups, next, err := a.svc.DescribeBackups(c.Tenant, cloudhsm.DescribeBackupsInput{
		Filter: f, Ascending: in.SortAscending, Shared: in.Shared, After: after, Limit: pageSize(in.MaxResults, DefaultBackupsPerPage),
	})
	if err != nil {
		return nil, err
	}
	out := struct {
		Backups   []backupJSON `json:"Backups"`
		NextToken string       `json:"NextToken,omitempty"`
	}{Backups: make([]backupJSON, len(backups))}
	for i, b := range backups {
		out.Backups[i] = backupToJSON(b)
	}
	if next != 0 {
		out.NextToken = a.tokens.makeSeq(query, c.Tenant, next)
	}
	return out, nil
}

type backupOut struct {
	Backup backupJSON `json:"Backup"`
}

func (a *API) deleteBackup(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct{ BackupId string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	b, err := a.svc.DeleteBackup(c.Tenant, in.BackupId)
	if err != nil {
		return nil, err
	}
	return backupOut{backupToJSON(b)}, nil
}

func (a *API) restoreBackup(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct{ BackupId string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	b, err := a.svc.RestoreBackup(c.Tenant, in.BackupId)
	if err != nil {
		return nil, err
	}
	return backupOut{backupToJSON(b)}, nil
}

func (a *API) modifyBackupAttributes(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		BackupId     string
		NeverExpires bool
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	b, err := a.svc.ModifyBackupAttributes(c.Tenant, in.BackupId, in.NeverExpires)
	if err != nil {
		return nil, err
	}
	return backupOut{backupToJSON(b)}, nil
}

func (a *API) copyBackupToRegion(ctx context.Context, c *Caller, body input) (any, error) {
	var in struct {
		DestinationRegion string
		BackupId          string
		TagList           []tagIn
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	r, err := a.svc.CopyBackupToRegion(c.Tenant, in.BackupId, in.DestinationRegion, tagsIn(in.TagList), in.TagList != nil)
	if err != nil {
		return nil, err
	}
	type dest struct {
		CreateTimestamp epoch  `json:"CreateTimestamp,omitzero"`
		SourceRegion    string `json:"SourceRegion,omitempty"`
		SourceBackup    string `json:"SourceBackup,omitempty"`
		SourceCluster   string `json:"SourceCluster,omitempty"`
	}
	return struct {
		DestinationBackup dest `json:"DestinationBackup"`
	}{dest{epoch(r.CreateTimestamp), r.SourceRegion, r.SourceBackup, r.SourceCluster}}, nil
}

type policyIn struct {
	ResourceArn string
	Policy      string
}

func (a *API) getResourcePolicy(ctx context.Context, c *Caller, body input) (any, error) {
	var in policyIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	p, err := a.svc.GetResourcePolicy(c.Tenant, in.ResourceArn)
	if err != nil {
		return nil, err
	}
	return struct {
		Policy string `json:"Policy,omitempty"`
	}{p}, nil
}

type policyOut struct {
	ResourceArn string `json:"ResourceArn,omitempty"`
	Policy      string `json:"Policy,omitempty"`
}

func (a *API) putResourcePolicy(ctx context.Context, c *Caller, body input) (any, error) {
	var in policyIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.Policy == "" {
		return nil, invalid("Policy is required: give the resource policy document as a JSON string.")
	}
	p, err := a.svc.PutResourcePolicy(c.Tenant, in.ResourceArn, in.Policy)
	if err != nil {
		return nil, err
	}
	return policyOut{in.ResourceArn, p}, nil
}

func (a *API) deleteResourcePolicy(ctx context.Context, c *Caller, body input) (any, error) {
	var in policyIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	p, err := a.svc.DeleteResourcePolicy(c.Tenant, in.ResourceArn)
	if err != nil {
		return nil, err
	}
	return policyOut{in.ResourceArn, p}, nil
}
