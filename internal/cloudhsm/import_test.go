package cloudhsm_test

// Import (snapshots: the admin API's import and --seed files), Export and
// Reset.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
)

// validSnapshot is a snapshot Import accepts: an ACTIVE cluster with one
// HSM (no identity: Import makes one) and a READY backup of it.
func validSnapshot() *cloudhsm.Snapshot {
	c := snapCluster(tenantA, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, 1, cloudhsm.HsmActive)
	c.ID = "cluster-importimpor"
	c.Hsms[0].ID, c.Hsms[0].Identity = "hsm-importimpor", nil
	b := &cloudhsm.Backup{Tenant: tenantA, ID: "backup-importimpor", ClusterID: c.ID}
	return &cloudhsm.Snapshot{Clusters: []*cloudhsm.Cluster{c}, Backups: []*cloudhsm.Backup{b}}
}

// secondCluster adds another valid cluster (with one HSM) to s.
func secondCluster(s *cloudhsm.Snapshot) *cloudhsm.Cluster {
	c := snapCluster(tenantA, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, 1, cloudhsm.HsmActive)
	c.ID, c.Hsms[0].ID = "cluster-secondsecon", "hsm-secondsecon"
	s.Clusters = append(s.Clusters, c)
	return c
}

type importCase struct {
	name string
	mod  func(s *cloudhsm.Snapshot)
	want []string // in the message: the item and the field
	// late marks the refusals made once HSM identities exist (while
	// filling in): the others come before any key is made.
	late bool
}

func cl(s *cloudhsm.Snapshot) *cloudhsm.Cluster { return s.Clusters[0] }
func bk(s *cloudhsm.Snapshot) *cloudhsm.Backup  { return s.Backups[0] }

var clusterImportCases = []importCase{
	{"short account", func(s *cloudhsm.Snapshot) { cl(s).Tenant.Account = "1234" }, []string{"clusters[0] (cluster-importimpor)", "account"}, false},
	{"no region", func(s *cloudhsm.Snapshot) { cl(s).Tenant.Region = "" }, []string{"clusters[0]", "account and region are required"}, false},
	{"unknown region", func(s *cloudhsm.Snapshot) { cl(s).Tenant.Region = "mars-north-1" }, []string{"clusters[0]", "region"}, false},
	{"cluster id pattern", func(s *cloudhsm.Snapshot) { cl(s).ID = "cluster-1" }, []string{"clusters[0] (cluster-1)", "clusterId", "ClusterId"}, false},
	{"cluster state", func(s *cloudhsm.Snapshot) { cl(s).State = "RUNNING" }, []string{"clusters[0]", "state \"RUNNING\""}, false},
	{"HsmType", func(s *cloudhsm.Snapshot) { cl(s).HsmType = "hsm9.big" }, []string{"clusters[0]", "hsmType"}, false},
	{"NON_FIPS hsm1", func(s *cloudhsm.Snapshot) { cl(s).HsmType, cl(s).Mode = cloudhsm.HsmTypeHsm1, cloudhsm.ModeNonFIPS }, []string{"clusters[0]", "mode NON_FIPS"}, false},
	{"DUALSTACK hsm1", func(s *cloudhsm.Snapshot) {
		cl(s).HsmType, cl(s).NetworkType = cloudhsm.HsmTypeHsm1, cloudhsm.NetworkDual
	}, []string{"clusters[0]", "networkType DUALSTACK"}, false},
	{"TargetHsmType", func(s *cloudhsm.Snapshot) { cl(s).TargetHsmType = "hsm3" }, []string{"clusters[0]", "TargetHsmType"}, false},
	{"StateBeforeDegraded", func(s *cloudhsm.Snapshot) { cl(s).StateBeforeDegraded = cloudhsm.ClusterDegraded }, []string{"clusters[0]", "stateBeforeDegraded"}, false},
	{"retention", func(s *cloudhsm.Snapshot) { cl(s).RetentionDays = 380 }, []string{"clusters[0]", "RetentionDays 380"}, false},
	{"51 tags", func(s *cloudhsm.Snapshot) { cl(s).Tags = tagsN("k", 51) }, []string{"clusters[0]", "tags has 51 tags"}, false},
	{"reserved tag", func(s *cloudhsm.Snapshot) { cl(s).Tags = []cloudhsm.Tag{{Key: "aws:x"}} }, []string{"clusters[0]", "tags", "reserved"}, false},
	{"duplicate tag", func(s *cloudhsm.Snapshot) { cl(s).Tags = []cloudhsm.Tag{{Key: "a"}, {Key: "a"}} }, []string{"clusters[0]", "Duplicate tag key"}, false},
	{"tag key pattern", func(s *cloudhsm.Snapshot) { cl(s).Tags = []cloudhsm.Tag{{Key: "a*b"}} }, []string{"clusters[0]", "tags[0].key"}, false},
	{"time before 1970", func(s *cloudhsm.Snapshot) { cl(s).Created = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC) }, []string{"clusters[0]", "createdAt"}, false},
	{"time after 2261", func(s *cloudhsm.Snapshot) { cl(s).Due = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }, []string{"clusters[0]", "Due"}, false},
	{"subnet without AZ", func(s *cloudhsm.Snapshot) { cl(s).Subnets[0].AZ = "" }, []string{"clusters[0]", "subnets[0]"}, false},
	{"two subnets in a zone", func(s *cloudhsm.Snapshot) {
		cl(s).Subnets = append(cl(s).Subnets, network.Subnet{ID: "subnet-0f0e0d0c0b0a09082", AZ: testSubnet.AZ})
	}, []string{"clusters[0]", "subnets[1]", "one subnet per zone"}, false},
	{"29 HSMs", func(s *cloudhsm.Snapshot) {
		*cl(s) = *snapCluster(tenantA, cloudhsm.HsmTypeHsm2m, cloudhsm.ClusterActive, 29, cloudhsm.HsmActive)
	}, []string{"clusters[0]", "hsms has 29 HSMs"}, false},
	{"HSM id pattern", func(s *cloudhsm.Snapshot) { cl(s).Hsms[0].ID = "hsm-x" }, []string{"clusters[0] (cluster-importimpor).hsms[0]", "hsmId \"hsm-x\""}, false},
	{"HSM state", func(s *cloudhsm.Snapshot) { cl(s).Hsms[0].State = "BROKEN" }, []string{"clusters[0] (cluster-importimpor).hsms[0]", "state"}, false},
	{"HSM zone without subnet", func(s *cloudhsm.Snapshot) { cl(s).Hsms[0].AZ = region + "c" }, []string{"hsms[0]", "availabilityZone \"us-east-1c\""}, false},
	{"HSM EniIP", func(s *cloudhsm.Snapshot) { cl(s).Hsms[0].EniIP = "10.9.1" }, []string{"hsms[0]", "eniIp"}, false},
	{"HSM EniIPv6", func(s *cloudhsm.Snapshot) { cl(s).Hsms[0].EniIPv6 = "10.9.1.9" }, []string{"hsms[0]", "eniIpV6"}, false},
	{"DEGRADED without a degraded HSM", func(s *cloudhsm.Snapshot) { cl(s).State = cloudhsm.ClusterDegraded }, []string{"clusters[0]", "state is DEGRADED"}, false},
	{"duplicate cluster id", func(s *cloudhsm.Snapshot) { secondCluster(s).ID = cl(s).ID }, []string{"clusters[1]", "also the id of clusters[0]"}, false},
	{"duplicate HSM id", func(s *cloudhsm.Snapshot) { secondCluster(s).Hsms[0].ID = cl(s).Hsms[0].ID }, []string{"clusters[1].hsms[0]", "clusters[0].hsms[0]"}, false},
	{"EniIP outside the subnet", func(s *cloudhsm.Snapshot) { cl(s).Hsms[0].EniIP = "10.9.2.10" }, []string{"clusters[0] (cluster-importimpor)", "hsms[0]", "eniIp"}, true},
	{"EniIP taken in the snapshot", func(s *cloudhsm.Snapshot) {
		cl(s).Hsms[0].EniIP = "10.9.1.10"
		secondCluster(s).Hsms[0].EniIP = "10.9.1.10"
	}, []string{"clusters[1] (cluster-secondsecon)", "hsms[0]", "eniIp"}, true},
	{"no CIDR to choose an EniIP from", func(s *cloudhsm.Snapshot) { cl(s).Subnets[0].CIDR = netip.Prefix{} }, []string{"clusters[0]", "has no cidr"}, true},
}

var backupImportCases = []importCase{
	{"backup account", func(s *cloudhsm.Snapshot) { bk(s).Tenant.Account = "abc" }, []string{"backups[0] (backup-importimpor)", "account"}, false},
	{"backup id pattern", func(s *cloudhsm.Snapshot) { bk(s).ID = "backup-1" }, []string{"backups[0] (backup-1)", "BackupId"}, false},
	{"backup ClusterID", func(s *cloudhsm.Snapshot) { bk(s).ClusterID = "c1" }, []string{"backups[0]", "clusterId"}, false},
	{"backup state", func(s *cloudhsm.Snapshot) { bk(s).State = "GONE" }, []string{"backups[0]", "state \"GONE\""}, false},
	{"backup NON_FIPS hsm1", func(s *cloudhsm.Snapshot) { bk(s).HsmType, bk(s).Mode = cloudhsm.HsmTypeHsm1, cloudhsm.ModeNonFIPS }, []string{"backups[0]", "mode NON_FIPS"}, false},
	{"backup retention", func(s *cloudhsm.Snapshot) { bk(s).RetentionDays = 6 }, []string{"backups[0]", "RetentionDays 6"}, false},
	{"copy without source region", func(s *cloudhsm.Snapshot) { bk(s).IsCopy = true }, []string{"backups[0]", "sourceRegion"}, false},
	{"unknown source region", func(s *cloudhsm.Snapshot) { bk(s).SourceRegion = "xx-1" }, []string{"backups[0]", "sourceRegion \"xx-1\""}, false},
	{"backup time", func(s *cloudhsm.Snapshot) { bk(s).DeleteTimestamp = time.Unix(-1, 0) }, []string{"backups[0]", "deleteTimestamp"}, false},
	{"duplicate backup id", func(s *cloudhsm.Snapshot) {
		s.Backups = append(s.Backups, &cloudhsm.Backup{Tenant: tenantA, ID: bk(s).ID, ClusterID: "cluster-aaaaaaaaaaa"})
	}, []string{"backups[1]", "also the id of backups[0]"}, false},
}

// Import refuses a snapshot the service could never hold, naming the item
// and the field; the refusal leaves the state as it was (here: the valid
// snapshot, imported before), and comes before any key is made when the
// snapshot itself shows the fault.
func TestImportRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range slices.Concat(clusterImportCases, backupImportCases) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			valid := validSnapshot()
			valid.Clusters[0].Hsms[0].Identity = placeholder(0)
			mustOK(t, e.svc.Import(valid))
			before := exportJSON(t, e.svc)
			s := validSnapshot()
			tc.mod(s)
			err := e.svc.Import(s)
			wantErr(t, err, cloudhsm.KindInvalidRequest, tc.want...)
			if !tc.late && e.ids.made.Load() != 0 {
				t.Errorf("HSM identities were made before the refusal")
			}
			if got := exportJSON(t, e.svc); got != before {
				t.Fatalf("a refused import changed the state:\n%s", got)
			}
		})
	}
}

// exportJSON is the service's export with its time left out.
func exportJSON(t *testing.T, svc *cloudhsm.Service) string {
	t.Helper()
	snap, err := svc.Export()
	mustOK(t, err)
	snap.Time = time.Time{}
	b, err := json.Marshal(snap)
	mustOK(t, err)
	return string(b)
}

var idRe = regexp.MustCompile(`^(cluster|hsm|backup)-[a-z2-7]{11}$`)

// Import fills what a snapshot leaves out as a new resource would have it,
// and in-progress states resume: an UNINITIALIZED cluster with an ACTIVE
// HSM gets its CSR, a CREATE_IN_PROGRESS one becomes UNINITIALIZED after
// ClusterCreate, an ACTIVE one with HSMs is backed up on schedule.
func TestImportFillsAndResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	active := &cloudhsm.Cluster{Tenant: tenantA, Subnets: []network.Subnet{testSubnet}, Hsms: []*cloudhsm.Hsm{{AZ: testSubnet.AZ, Identity: placeholder(1)}}}
	uninit := &cloudhsm.Cluster{Tenant: tenantA, State: cloudhsm.ClusterUninitialized, Subnets: []network.Subnet{testSubnet}, Hsms: []*cloudhsm.Hsm{{AZ: testSubnet.AZ}}}
	creating := &cloudhsm.Cluster{Tenant: tenantA, State: cloudhsm.ClusterCreateInProgress, Subnets: []network.Subnet{testSubnet}}
	old := &cloudhsm.Backup{Tenant: tenantA, ClusterID: "cluster-aaaaaaaaaaa", Created: t0.Add(-400 * day), RetentionDays: 7}
	newer := &cloudhsm.Backup{Tenant: tenantA, ClusterID: "cluster-aaaaaaaaaaa", Created: t0.Add(-300 * day), RetentionDays: 7}
	mustOK(t, e.svc.Import(&cloudhsm.Snapshot{Clusters: []*cloudhsm.Cluster{active, uninit, creating}, Backups: []*cloudhsm.Backup{old, newer}}))
	ids := []string{active.ID, uninit.ID, creating.ID, old.ID}
	a := e.cluster(ids[0])
	h := a.Hsms[0]
	if !idRe.MatchString(a.ID) || !idRe.MatchString(h.ID) || !idRe.MatchString(ids[3]) || a.HsmType != cloudhsm.HsmTypeHsm2m || a.Mode != cloudhsm.ModeFIPS ||
		a.NetworkType != cloudhsm.NetworkIPv4 || a.State != cloudhsm.ClusterActive || a.RetentionDays != 90 || !a.Created.Equal(t0) ||
		h.State != cloudhsm.HsmActive || h.StateMessage != "HSM created." || h.HsmType != cloudhsm.HsmTypeHsm2m || h.SubnetID != testSubnet.ID || h.EniID == "" ||
		!testSubnet.CIDR.Contains(netip.MustParseAddr(h.EniIP)) {
		t.Fatalf("filled cluster: %+v, HSM %+v", a, h)
	}
	if err := csrOfHsm(e.cluster(ids[1]), e.cluster(ids[1]).Hsms[0].ID); err != nil {
		t.Fatalf("imported UNINITIALIZED cluster with an ACTIVE HSM: %v", err)
	}
	if got := e.backup(tenantA, ids[3]); got.State != cloudhsm.BackupReady || got.HsmType != cloudhsm.HsmTypeHsm2m || got.Mode != cloudhsm.ModeFIPS {
		t.Fatalf("filled backup: %+v", got)
	}
	e.advance(testDelays().ClusterCreate)
	e.wantClusterState(ids[2], cloudhsm.ClusterUninitialized)
	// A backup far past its retention (and not its cluster's last) gets a
	// day (BackupInterval) first.
	e.advance(day - testDelays().ClusterCreate - time.Millisecond)
	if got := e.backup(tenantA, ids[3]).State; got != cloudhsm.BackupReady {
		t.Fatalf("the imported backup past retention is %s at once", got)
	}
	e.advance(time.Millisecond)
	if got := e.backup(tenantA, ids[3]).State; got != cloudhsm.BackupPendingDeletion {
		t.Fatalf("the imported backup past retention is %s after its day", got)
	}
	if bs := e.backups(ids[0]); len(bs) != 1 || !bs[0].Created.Equal(t0.Add(day)) {
		t.Fatalf("imported ACTIVE cluster with an HSM: backups %v, want one a day after the import", states(bs))
	}
}

// Export then Import into another service gives the same clusters and
// backups (Seq and Version aside), and the imported estate behaves as the
// original: shares, pending transitions, scheduled backups, retention.
func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c, _ := e.active(func(in *cloudhsm.CreateClusterInput) {
		in.Tags = []cloudhsm.Tag{{Key: "k", Value: "v"}}
		in.RetentionDays = 7
	})
	b := e.backups(c.ID)[0]
	_, err := e.svc.PutResourcePolicy(tenantA, b.ARN(), fmt.Sprintf(sharePolicy, acctB, b.ARN()))
	mustOK(t, err)
	_, err = e.svc.CopyBackupToRegion(tenantA, b.ID, region2, nil, false)
	mustOK(t, err)
	u, _ := e.uninitialized()
	creating := e.createCluster()
	e.createHsm(c.ID, 1) // CREATE_IN_PROGRESS when exported
	snap, err := e.svc.Export()
	mustOK(t, err)
	raw, err := json.Marshal(snap)
	mustOK(t, err)

	e2 := newEnv(t)
	e2.clk.Advance(e.clk.Now().Sub(t0))
	var back cloudhsm.Snapshot
	mustOK(t, json.Unmarshal(raw, &back))
	mustOK(t, e2.svc.Import(&back))
	if want, got := comparable(t, e.svc), comparable(t, e2.svc); got != want {
		t.Fatalf("round trip differs:\nexported %s\nimported %s", want, got)
	}
	if got := e2.shared(tenantB); !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("after import, shared with B: %v", got)
	}
	for _, env := range []*env{e, e2} {
		env.advance(30 * day)
	}
	if want, got := lifeOf(e, c.ID, u.ID, creating.ID), lifeOf(e2, c.ID, u.ID, creating.ID); got != want {
		t.Fatalf("30 days on, the imported estate differs:\noriginal %s\nimported %s", want, got)
	}
}

// comparable is the export with what an import gives anew (Seq, Version,
// the export time) left out.
func comparable(t *testing.T, svc *cloudhsm.Service) string {
	t.Helper()
	snap, err := svc.Export()
	mustOK(t, err)
	for _, c := range snap.Clusters {
		c.Seq, c.Version = 0, 0
	}
	for _, b := range snap.Backups {
		b.Seq = 0
	}
	snap.Time = time.Time{}
	out, err := json.MarshalIndent(snap, "", " ")
	mustOK(t, err)
	return string(out)
}

// lifeOf summarises clusters: state, HSM states and backup states by
// creation time (new backups have ids of their own on each side).
func lifeOf(e *env, ids ...string) string {
	var sb strings.Builder
	for _, id := range ids {
		c := e.cluster(id)
		fmt.Fprintf(&sb, "%s %s hsms:", id, c.State)
		for _, h := range c.Hsms {
			fmt.Fprintf(&sb, " %s", h.State)
		}
		sb.WriteString(" backups:")
		for _, b := range e.backups(id) {
			fmt.Fprintf(&sb, " %s@%s", b.State, b.Created.Sub(t0))
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// Reset of one account removes its clusters and backups in every region
// (freeing its quota) and nothing else; Reset of all removes everything.
// Nothing comes back when the removed resources' transitions fall due.
func TestReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *cloudhsm.Config) { c.ClustersPerRegion = 1 })
	a, _ := e.active()
	other := cloudhsm.Tenant{Account: acctA, Region: region2}
	_, err := e.svc.CopyBackupToRegion(tenantA, e.backups(a.ID)[0].ID, region2, nil, false)
	mustOK(t, err)
	bc, err := e.createClusterIn(tenantB)
	mustOK(t, err)
	mustOK(t, e.svc.Reset(acctA))
	if e.clusterOf(tenantA, a.ID) != nil || len(e.backupsOf(tenantA, a.ID)) != 0 || len(e.backupsOf(other, a.ID)) != 0 {
		t.Fatal("Reset(account) left some of the account's resources")
	}
	if e.clusterOf(tenantB, bc.ID) == nil {
		t.Fatal("Reset(account) removed another account's cluster")
	}
	e.advance(30 * day)
	if cs, _, _ := e.describe(tenantA, cloudhsm.ClusterFilter{}, 25); len(cs) != 0 {
		t.Fatalf("%d clusters came back", len(cs))
	}
	if bs, _, _ := e.svc.DescribeBackups(tenantA, cloudhsm.DescribeBackupsInput{Limit: 50}); len(bs) != 0 {
		t.Fatalf("%d backups came back", len(bs))
	}
	if _, err := e.createClusterIn(tenantA); err != nil {
		t.Fatalf("the quota is not freed by Reset: %v", err)
	}
	mustOK(t, e.svc.Reset(""))
	if snap, _ := e.svc.Export(); len(snap.Clusters)+len(snap.Backups) != 0 {
		t.Fatalf("Reset(\"\") left %d clusters, %d backups", len(snap.Clusters), len(snap.Backups))
	}
}
