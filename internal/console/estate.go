package console

import (
	"cmp"
	"container/heap"
	"slices"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
)

// estate reads the domain for the pages. Every read goes through the
// Service's read methods (Tenants, VisitClusters, DescribeBackups), which
// copy nothing the page does not keep; nothing here changes the estate.
type estate struct {
	svc *cloudhsm.Service
}

func newEstate(svc *cloudhsm.Service) *estate { return &estate{svc: svc} }

// tenantList returns every tenant that holds resources, sorted (none when
// the estate cannot be read: the page shows what it could read, as for
// every other read here).
func (e *estate) tenantList() []cloudhsm.Tenant {
	ts, _ := e.svc.Tenants()
	return ts
}

// visitAll calls fn for every cluster of t, in chunks, so that the read
// lock is never held for a whole large account at once.
func (e *estate) visitAll(t cloudhsm.Tenant, f cloudhsm.ClusterFilter, fn func(c *cloudhsm.Cluster)) {
	var after uint64
	for {
		next, err := e.svc.VisitClusters(t, f, after, 2048, fn)
		if err != nil || next == 0 {
			return
		}
		after = next
	}
}

// backupsOf returns every backup of t that f selects, oldest first.
func (e *estate) backupsOf(t cloudhsm.Tenant, f cloudhsm.BackupFilter) []*cloudhsm.Backup {
	var out []*cloudhsm.Backup
	var after uint64
	for {
		page, next, err := e.svc.DescribeBackups(t, cloudhsm.DescribeBackupsInput{Filter: f, Ascending: true, After: after, Limit: 2048})
		out = append(out, page...)
		if err != nil || next == 0 {
			return out
		}
		after = next
	}
}

// ---- the landing page ----

// ClusterQuery selects the clusters of the landing page.
type ClusterQuery struct {
	Account, Region, State, HsmType, Mode string
	// Before and After page through the clusters, newest first: the page
	// of clusters created before (older than) the cluster of sequence
	// Before, or after (newer than) After; neither: the newest.
	Before, After uint64
	Limit         int
}

func (q ClusterQuery) match(c *cloudhsm.Cluster) bool {
	return (q.State == "" || c.State == q.State) && (q.HsmType == "" || c.HsmType == q.HsmType) && (q.Mode == "" || c.Mode == q.Mode) &&
		(q.Before == 0 || c.Seq < q.Before) && (q.After == 0 || c.Seq > q.After)
}

// ClusterRow is a cluster in the landing page's list.
type ClusterRow struct {
	Tenant  cloudhsm.Tenant
	ID      string
	Seq     uint64
	State   string
	HsmType string
	Mode    string
	Hsms    int
	Created time.Time
}

// TenantSummary counts the resources of one account and region by state.
type TenantSummary struct {
	Tenant   cloudhsm.Tenant
	Clusters map[string]int
	Hsms     map[string]int
	Backups  map[string]int
}

// Due is something the clock will do.
type Due struct {
	At        time.Time
	What      string // "cluster", "hsm", "backup"
	ID        string
	ClusterID string
	Tenant    cloudhsm.Tenant
	Event     string // what happens
	URL       string // the resource's page
}

// DegradedHsm is an HSM marked DEGRADED.
type DegradedHsm struct {
	Tenant           cloudhsm.Tenant
	ClusterID, HsmID string
}

// Overview is everything the landing page shows of the estate.
type Overview struct {
	Tenants  []TenantSummary
	Matched  int          // clusters the query's filters select (all pages)
	Rows     []ClusterRow // this page, newest first
	Older    uint64       // Before of the next (older) page; 0: none
	Newer    uint64       // After of the previous (newer) page; 0: none
	Due      []Due        // the next things the clock will do, soonest first
	Degraded []DegradedHsm
	Clusters int // clusters in the estate
	// Subnets are the subnets the clusters use, for the create form.
	Subnets []SubnetChoice
}

const (
	maxDue      = 8
	maxDegraded = 50
)

// rowHeap keeps the rows of one page: a min-heap by Seq (newest first
// wanted) or a max-heap (the newer page, oldest first wanted).
type rowHeap struct {
	rows   []ClusterRow
	newest bool
}

func (h *rowHeap) Len() int { return len(h.rows) }
func (h *rowHeap) Less(i, j int) bool {
	if h.newest {
		return h.rows[i].Seq < h.rows[j].Seq
	}
	return h.rows[i].Seq > h.rows[j].Seq
}
func (h *rowHeap) Swap(i, j int) { h.rows[i], h.rows[j] = h.rows[j], h.rows[i] }
func (h *rowHeap) Push(x any)    { h.rows = append(h.rows, x.(ClusterRow)) }
func (h *rowHeap) Pop() any {
	x := h.rows[len(h.rows)-1]
	h.rows = h.rows[:len(h.rows)-1]
	return x
}

// keep offers a row: the heap holds the k best.
func (h *rowHeap) keep(r ClusterRow, k int) {
	if len(h.rows) < k {
		heap.Push(h, r)
		return
	}
	top := h.rows[0]
	if h.newest && r.Seq > top.Seq || !h.newest && r.Seq < top.Seq {
		h.rows[0] = r
		heap.Fix(h, 0)
	}
}

// overview reads the whole estate once: counts by tenant and state, the
// page of clusters q selects, what falls due next, the degraded HSMs. It
// costs one pass over every cluster and backup (about 10 ms for 100,000
// clusters); the console renders it once per change and shares the page
// among its viewers (see pageCache).
func (e *estate) overview(q ClusterQuery) Overview {
	var ov Overview
	k := q.Limit + 1 // one more tells whether another page follows
	h := &rowHeap{newest: q.After == 0}
	var due dueList
	var subnets subnetChoices
	for _, t := range e.tenantList() {
		sum := TenantSummary{Tenant: t, Clusters: map[string]int{}, Hsms: map[string]int{}, Backups: map[string]int{}}
		inScope := (q.Account == "" || q.Account == t.Account) && (q.Region == "" || q.Region == t.Region)
		e.visitAll(t, cloudhsm.ClusterFilter{}, func(c *cloudhsm.Cluster) {
			sum.Clusters[c.State]++
			ov.Clusters++
			if c.State != cloudhsm.ClusterDeleted {
				subnets.add(t, c)
			}
			for _, hsm := range c.Hsms {
				sum.Hsms[hsm.State]++
				if hsm.State == cloudhsm.HsmDegraded && len(ov.Degraded) < maxDegraded {
					ov.Degraded = append(ov.Degraded, DegradedHsm{Tenant: t, ClusterID: c.ID, HsmID: hsm.ID})
				}
				if !hsm.Due.IsZero() {
					due.offer(Due{At: hsm.Due, What: "hsm", ID: hsm.ID, ClusterID: c.ID, Tenant: t, Event: "HSM " + hsm.State + " ends"})
				}
			}
			if !c.Due.IsZero() {
				due.offer(Due{At: c.Due, What: "cluster", ID: c.ID, ClusterID: c.ID, Tenant: t, Event: c.State + " ends"})
			}
			if !c.NextBackup.IsZero() {
				due.offer(Due{At: c.NextBackup, What: "cluster", ID: c.ID, ClusterID: c.ID, Tenant: t, Event: "daily backup"})
			}
			if inScope && q.match(c) {
				ov.Matched++
				h.keep(ClusterRow{Tenant: t, ID: c.ID, Seq: c.Seq, State: c.State, HsmType: c.HsmType, Mode: c.Mode, Hsms: len(c.Hsms), Created: c.Created}, k)
			}
		})
		for _, b := range e.backupsOf(t, cloudhsm.BackupFilter{}) {
			sum.Backups[b.State]++
			if !b.Due.IsZero() {
				due.offer(Due{At: b.Due, What: "backup", ID: b.ID, ClusterID: b.ClusterID, Tenant: t, Event: "backup " + b.State + " ends"})
			}
			if !b.ExpireAt.IsZero() && b.State == cloudhsm.BackupReady && !b.NeverExpires {
				due.offer(Due{At: b.ExpireAt, What: "backup", ID: b.ID, ClusterID: b.ClusterID, Tenant: t, Event: "retention considers the backup"})
			}
		}
		if len(sum.Clusters)+len(sum.Backups) > 0 {
			ov.Tenants = append(ov.Tenants, sum)
		}
	}
	ov.Due = due.sorted()
	for i := range ov.Due {
		if d := &ov.Due[i]; d.What == "backup" {
			d.URL = backupURL(d.ID, d.Tenant)
		} else {
			d.URL = clusterURL(d.ClusterID, d.Tenant)
		}
	}
	ov.Subnets = subnets.sorted()
	rows := h.rows
	slices.SortFunc(rows, func(a, b ClusterRow) int { return cmpUint(b.Seq, a.Seq) })
	more := len(rows) > q.Limit
	if q.After == 0 {
		if more {
			rows = rows[:q.Limit]
			ov.Older = rows[len(rows)-1].Seq
		}
		if q.Before != 0 && len(rows) > 0 {
			ov.Newer = rows[0].Seq
		}
	} else {
		if more {
			rows = rows[1:]
			ov.Newer = rows[0].Seq
		}
		if len(rows) > 0 {
			ov.Older = rows[len(rows)-1].Seq
		}
	}
	ov.Rows = rows
	return ov
}

type dueList struct{ items []Due }

func (d *dueList) offer(x Due) {
	if len(d.items) < maxDue {
		d.items = append(d.items, x)
		return
	}
	latest := 0
	for i := range d.items {
		if d.items[i].At.After(d.items[latest].At) {
			latest = i
		}
	}
	if x.At.Before(d.items[latest].At) {
		d.items[latest] = x
	}
}

func (d *dueList) sorted() []Due {
	slices.SortFunc(d.items, func(a, b Due) int { return a.At.Compare(b.At) })
	return d.items
}

// ---- one cluster ----

// HsmView is one HSM of a cluster page.
type HsmView struct {
	ID, AZ, SubnetID, EniID, EniIP, EniIPv6, HsmType, State, StateMessage string
	Created, Due                                                          time.Time
	HsmCertificate, AwsHardwareCertificate, ManufacturerCertificate       string
}

// ClusterView is a copy of everything a cluster page shows.
type ClusterView struct {
	Tenant                                           cloudhsm.Tenant
	ID, State, StateMessage, HsmType, Mode, Network  string
	VpcID, SecurityGroup, SourceBackupID, TargetType string
	Created, Due, NextBackup, RollbackUntil          time.Time
	RetentionDays                                    int
	ManualActivationPending                          bool
	Subnets                                          []network.Subnet
	Tags                                             []cloudhsm.Tag
	Hsms                                             []HsmView
	History                                          []cloudhsm.Transition
	Csr, CsrHsmID, ClusterCertificate                string
	// Shown is what DescribeClusters' Certificates shows now.
	Shown cloudhsm.CertificatesView
	// Initializable: InitializeCluster can be asked for now.
	Initializable bool
}

func clusterView(c *cloudhsm.Cluster) ClusterView {
	v := ClusterView{Tenant: c.Tenant, ID: c.ID, State: c.State, StateMessage: c.StateMessage, HsmType: c.HsmType, Mode: c.Mode,
		Network: c.NetworkType, VpcID: c.VpcID, SourceBackupID: c.SourceBackupID, TargetType: c.TargetHsmType,
		Created: c.Created, Due: c.Due, NextBackup: c.NextBackup, RollbackUntil: c.HsmTypeRollbackExpiration,
		RetentionDays: c.RetentionDays, ManualActivationPending: c.ManualActivationPending,
		Subnets: slices.Clone(c.Subnets), Tags: slices.Clone(c.Tags), History: c.History(),
		Csr: c.Csr, CsrHsmID: c.CsrHsmID, ClusterCertificate: c.ClusterCertificate, Shown: c.Certificates(),
		Initializable: c.Initializable()}
	if c.ShowSecurityGroup() {
		v.SecurityGroup = c.SecurityGroup
	}
	for _, h := range c.Hsms {
		hv := HsmView{ID: h.ID, AZ: h.AZ, SubnetID: h.SubnetID, EniID: h.EniID, EniIP: h.EniIP, EniIPv6: h.EniIPv6,
			HsmType: h.HsmType, State: h.State, StateMessage: h.StateMessage, Created: h.Created, Due: h.Due}
		if h.Identity != nil {
			hv.HsmCertificate = h.Identity.HsmCertificate
			hv.AwsHardwareCertificate = h.Identity.AwsHardwareCertificate
			hv.ManufacturerCertificate = h.Identity.ManufacturerHardwareCertificate
		}
		v.Hsms = append(v.Hsms, hv)
	}
	slices.SortFunc(v.Subnets, func(a, b network.Subnet) int { return cmp.Compare(a.AZ, b.AZ) })
	return v
}

// scope returns the tenants to look in: the one named, or every one.
func (e *estate) scope(account, region string) []cloudhsm.Tenant {
	if account != "" && region != "" {
		return []cloudhsm.Tenant{{Account: account, Region: region}}
	}
	var out []cloudhsm.Tenant
	for _, t := range e.tenantList() {
		if (account == "" || t.Account == account) && (region == "" || t.Region == region) {
			out = append(out, t)
		}
	}
	return out
}

// clusters returns every cluster with this id in the tenants named (all
// when account and region are empty): ids are unique across the server,
// but an imported estate may hold one id in two accounts or regions.
func (e *estate) clusters(id, account, region string) []ClusterView {
	var out []ClusterView
	for _, t := range e.scope(account, region) {
		_, _ = e.svc.VisitClusters(t, cloudhsm.ClusterFilter{IDs: []string{id}}, 0, 1, func(c *cloudhsm.Cluster) {
			out = append(out, clusterView(c))
		})
	}
	return out
}

// backups returns every backup with this id in the tenants named.
func (e *estate) backups(id, account, region string) []*cloudhsm.Backup {
	var out []*cloudhsm.Backup
	for _, t := range e.scope(account, region) {
		out = append(out, e.backupsOf(t, cloudhsm.BackupFilter{IDs: []string{id}})...)
	}
	return out
}

// Lineage is where a backup comes from and what came of it.
type Lineage struct {
	Copies   []*cloudhsm.Backup // copies made from it in other regions
	Restored []ClusterRow       // clusters created from it
}

// lineage finds the copies of b (other regions of its account) and the
// clusters created from it (any account of its region: a shared backup
// can be restored by the accounts it is shared with).
func (e *estate) lineage(b *cloudhsm.Backup) Lineage {
	var l Lineage
	for _, t := range e.tenantList() {
		if t.Account == b.Tenant.Account && t.Region != b.Tenant.Region {
			l.Copies = append(l.Copies, e.backupsOf(t, cloudhsm.BackupFilter{SourceIDs: []string{b.ID}})...)
		}
		if t.Region == b.Tenant.Region {
			e.visitAll(t, cloudhsm.ClusterFilter{}, func(c *cloudhsm.Cluster) {
				if c.SourceBackupID == b.ID {
					l.Restored = append(l.Restored, ClusterRow{Tenant: t, ID: c.ID, Seq: c.Seq, State: c.State, HsmType: c.HsmType, Mode: c.Mode, Hsms: len(c.Hsms), Created: c.Created})
				}
			})
		}
	}
	return l
}

// SubnetChoice is a subnet the create form offers; an empty Account means
// any account of its region.
type SubnetChoice struct {
	Account, Region string
	Subnet          network.Subnet
}

const maxSubnetChoices = 200

// subnetChoices collects the subnets the clusters use (one pass shared
// with overview), at most maxSubnetChoices.
type subnetChoices struct {
	seen map[SubnetChoice]bool
	list []SubnetChoice
}

func (sc *subnetChoices) add(t cloudhsm.Tenant, c *cloudhsm.Cluster) {
	for _, s := range c.Subnets {
		ch := SubnetChoice{Account: t.Account, Region: t.Region, Subnet: s}
		if len(sc.list) >= maxSubnetChoices || sc.seen[ch] {
			continue
		}
		if sc.seen == nil {
			sc.seen = map[SubnetChoice]bool{}
		}
		sc.seen[ch] = true
		sc.list = append(sc.list, ch)
	}
}

func (sc *subnetChoices) sorted() []SubnetChoice {
	slices.SortFunc(sc.list, func(a, b SubnetChoice) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Region, b.Region), cmp.Compare(a.Subnet.VpcID, b.Subnet.VpcID), cmp.Compare(a.Subnet.AZ, b.Subnet.AZ))
	})
	return sc.list
}
