package snapshot_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/snapshot"
)

func decodeFile(t *testing.T, path string) *cloudhsm.Snapshot {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	snap, err := snapshot.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return snap
}

// TestLegacyDocumentsReadAsTheirVersion2: examples/seed-estate.json (a
// hand-written version 1 file, unchanged since it was published) and an
// export written by the last code that wrote version 1 read as the same
// snapshot as their version 2 rewrites, made by testdata/v1_to_v2.py from
// the documentation's table, not by this package.
func TestLegacyDocumentsReadAsTheirVersion2(t *testing.T) {
	t.Parallel()
	for _, pair := range [][2]string{
		{"../../examples/seed-estate.json", "../../examples/seed-estate.v2.json"},
		{"testdata/v1-export.json", "testdata/v1-export.v2.json"},
	} {
		legacy, v2 := decodeFile(t, pair[0]), decodeFile(t, pair[1])
		if len(legacy.Clusters) == 0 || len(legacy.Backups) == 0 {
			t.Fatalf("%s holds %d clusters and %d backups", pair[0], len(legacy.Clusters), len(legacy.Backups))
		}
		if !reflect.DeepEqual(legacy, v2) {
			t.Errorf("%s and %s read differently:\n%s", pair[0], pair[1], firstDifference(legacy, v2))
		}
	}
}

// firstDifference names the first cluster or backup that differs.
func firstDifference(a, b *cloudhsm.Snapshot) string {
	if !a.Time.Equal(b.Time) || len(a.Clusters) != len(b.Clusters) || len(a.Backups) != len(b.Backups) {
		return "times or counts differ"
	}
	for i := range a.Clusters {
		if !reflect.DeepEqual(a.Clusters[i], b.Clusters[i]) {
			for j := range a.Clusters[i].Hsms {
				if j < len(b.Clusters[i].Hsms) && !reflect.DeepEqual(a.Clusters[i].Hsms[j], b.Clusters[i].Hsms[j]) {
					return "clusters[" + a.Clusters[i].ID + "].hsms: " + showDiff(*a.Clusters[i].Hsms[j], *b.Clusters[i].Hsms[j])
				}
			}
			ca, cb := *a.Clusters[i], *b.Clusters[i]
			ca.Hsms, cb.Hsms = nil, nil
			return "clusters[" + ca.ID + "]: " + showDiff(ca, cb)
		}
	}
	for i := range a.Backups {
		if !reflect.DeepEqual(a.Backups[i], b.Backups[i]) {
			return "backups[" + a.Backups[i].ID + "]: " + showDiff(*a.Backups[i], *b.Backups[i])
		}
	}
	return "?"
}

func showDiff[T any](a, b T) string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if f.IsExported() && !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			out = append(out, f.Name)
		}
	}
	return "fields " + strings.Join(out, ", ")
}

// TestEncodeThenDecode: what Encode writes, Decode reads back as it was,
// every field of the estate's export included.
func TestEncodeThenDecode(t *testing.T) {
	t.Parallel()
	snap := decodeFile(t, "testdata/v1-export.json")
	if err := snap.Clusters[0].SetHistory([]cloudhsm.Transition{
		{To: cloudhsm.ClusterCreateInProgress, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Cause: "CreateCluster"},
		{From: cloudhsm.ClusterCreateInProgress, To: cloudhsm.ClusterUninitialized, At: time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC), Cause: "clock"},
	}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := snapshot.Encode(&buf, snap); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "{\n  \"version\": 2,\n") {
		t.Fatalf("Encode does not start with version 2: %.80q", buf.String())
	}
	back, err := snapshot.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("Decode(Encode(snapshot)): %v", err)
	}
	if !reflect.DeepEqual(snap, back) {
		t.Fatalf("Decode(Encode(snapshot)) differs:\n%s", firstDifference(snap, back))
	}
	// Nothing of the service's bookkeeping is written.
	for _, internal := range []string{`"Seq"`, `"seq"`, `"Version"`, `"queued`, `"partition"`, `"Partition"`} {
		if strings.Contains(buf.String(), internal) {
			t.Errorf("the export holds %s", internal)
		}
	}
}

// TestDecodeRefusesWhatIsNotTheFormat: every refusal says where.
func TestDecodeRefusesWhatIsNotTheFormat(t *testing.T) {
	t.Parallel()
	const c2 = `"account": "111122223333", "region": "us-east-1"`
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"empty", "  \n", []string{"the snapshot is empty"}},
		{"syntax", "{\n  \"version\": 2,\n  \"clusters\": [}\n", []string{"invalid JSON at line 3, column 16"}},
		{"cut short", `{"version": 2, "clusters": [`, []string{"invalid JSON", "ends early"}},
		{"not an object", `[1, 2]`, []string{"the snapshot is a JSON array, not an object"}},
		{"two values", `{} {}`, []string{"more than one JSON value"}},
		{"future version", `{"version": 3}`, []string{"version: 3 is not a snapshot version this server reads"}},
		{"version as a string", `{"version": "2"}`, []string{`version: "2" is not a version number`}},
		{"unknown top-level field", `{"version": 2, "clusterz": []}`, []string{`the document: unknown field "clusterz"`}},
		{"unknown HSM field", `{"version": 2, "clusters": [{` + c2 + `, "hsms": [{}, {"hsmID": "hsm-aaaaaaaaaaa"}]}]}`,
			[]string{`clusters[0].hsms[1]: unknown field "hsmID"`, `did you mean "hsmId"?`}},
		{"version 1 names in version 2", `{"version": 2, "clusters": [{"Tenant": {}}]}`,
			[]string{`clusters[0]: unknown field "Tenant"`, "versions 0 and 1"}},
		{"version 2 names in version 1", `{"version": 1, "clusters": [{"clusterId": "cluster-aaaaaaaaaaa"}]}`,
			[]string{`clusters[0]: unknown field "clusterId"`, `"version": 2`}},
		{"unknown legacy field", `{"clusters": [{"Tenant": {"Acount": "1"}}]}`, []string{`clusters[0].Tenant: unknown field "Acount"`}},
		{"wrong type", `{"version": 2, "clusters": [{` + c2 + `, "hsms": [{"state": 3}]}]}`,
			[]string{"clusters[0].hsms[0].state: a number where a string is expected"}},
		{"wrong legacy type", `{"version": 1, "backups": [{}, {"NeverExpires": "yes"}]}`,
			[]string{"backups[1].NeverExpires: a string where true or false is expected"}},
		{"not a time", `{"version": 2, "backups": [{` + c2 + `, "createdAt": "yesterday"}]}`,
			[]string{`backups[0].createdAt: "yesterday" is not an RFC 3339 time`}},
		{"not a whole number", `{"version": 2, "clusters": [{` + c2 + `, "backupRetentionDays": 7.5}]}`,
			[]string{"clusters[0].backupRetentionDays: 7.5 is not a whole number"}},
		{"not a CIDR", `{"version": 2, "clusters": [{` + c2 + `, "subnets": [{"subnetId": "subnet-0a", "availabilityZone": "us-east-1a", "cidr": "10.0.1.0"}]}]}`,
			[]string{`clusters[0].subnets[0].cidr: "10.0.1.0" is not a CIDR block`}},
		{"IPv6 as IPv4", `{"version": 2, "clusters": [{` + c2 + `, "subnets": [{"subnetId": "subnet-0a", "availabilityZone": "us-east-1a", "cidr": "2600:1f18::/64"}]}]}`,
			[]string{`clusters[0].subnets[0].cidr: "2600:1f18::/64" is not a CIDR block of the right family`}},
		{"not a legacy CIDR", `{"clusters": [{"Subnets": [{"CIDR": "ten"}]}]}`, []string{`clusters[0].Subnets[0].CIDR: "ten" is not a CIDR block`}},
		{"null cluster", `{"version": 2, "clusters": [null]}`, []string{"clusters[0] is null"}},
		{"null HSM", `{"version": 2, "clusters": [{` + c2 + `, "hsms": [{}, null]}]}`, []string{"clusters[0].hsms[1] is null"}},
		{"null backup", `{"version": 2, "backups": [null]}`, []string{"backups[0] is null"}},
		{"null legacy cluster", `{"clusters": [null]}`, []string{"clusters[0] is null"}},
		{"null legacy HSM", `{"version": 1, "clusters": [{"Hsms": [null]}]}`, []string{"clusters[0].Hsms[0] is null"}},
		{"null legacy backup", `{"backups": [null]}`, []string{"backups[0] is null"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := snapshot.Decode(strings.NewReader(tc.doc))
			if err == nil {
				t.Fatalf("Decode accepted %s", tc.doc)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestDecodeVersions: a document without a version, or with version 0 or
// 1, is read in the legacy shape, whose names match in any case as they
// always did; version 2 in its own, exactly.
func TestDecodeVersions(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		`{"clusters": [{"Tenant": {"Account": "111122223333", "Region": "us-east-1"}, "ID": "cluster-aaaaaaaaaaa", "RetentionDays": 30}]}`,
		`{"version": 0, "CLUSTERS": [{"tenant": {"account": "111122223333", "region": "us-east-1"}, "id": "cluster-aaaaaaaaaaa", "retentiondays": 30}]}`,
		`{"version": 1, "clusters": [{"Tenant": {"Account": "111122223333", "Region": "us-east-1"}, "ID": "cluster-aaaaaaaaaaa", "RetentionDays": 30, "Seq": 7, "Version": 9, "Partition": 1}]}`,
		`{"version": 2, "clusters": [{"account": "111122223333", "region": "us-east-1", "clusterId": "cluster-aaaaaaaaaaa", "backupRetentionDays": 30}]}`,
	} {
		snap, err := snapshot.Decode(strings.NewReader(doc))
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		want := &cloudhsm.Cluster{Tenant: cloudhsm.Tenant{Account: "111122223333", Region: "us-east-1"}, ID: "cluster-aaaaaaaaaaa", RetentionDays: 30, Hsms: []*cloudhsm.Hsm{}}
		if len(snap.Clusters) != 1 || !reflect.DeepEqual(snap.Clusters[0], want) {
			t.Errorf("%s read as %+v", doc, snap.Clusters)
		}
	}
	if _, err := snapshot.Decode(strings.NewReader(`{"version": 2, "Clusters": []}`)); err == nil || !strings.Contains(err.Error(), `did you mean "clusters"?`) {
		t.Errorf("version 2 matched a name in another case: %v", err)
	}
}

// TestLegacySubnetMapping: files of the first versions may name a
// cluster's subnets only in SubnetMapping.
func TestLegacySubnetMapping(t *testing.T) {
	t.Parallel()
	snap, err := snapshot.Decode(strings.NewReader(`{"version": 1, "clusters": [{"Tenant": {"Account": "111122223333", "Region": "us-east-1"},
		"VpcID": "vpc-0a1b2c3d4e5f60718", "SubnetMapping": {"us-east-1b": "subnet-0b", "us-east-1a": "subnet-0a"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	got := snap.Clusters[0].SubnetMapping()
	if len(got) != 2 || got["us-east-1a"] != "subnet-0a" || got["us-east-1b"] != "subnet-0b" || snap.Clusters[0].Subnets[0].VpcID != "vpc-0a1b2c3d4e5f60718" {
		t.Fatalf("subnets from SubnetMapping: %+v", snap.Clusters[0].Subnets)
	}
}

// fill sets every exported field of v, recursively, to a value that is not
// the zero value.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, *n, time.UTC)))
		return
	}
	if v.Kind() == reflect.Struct && v.Type() == reflect.TypeFor[network.Subnet]() {
		sn := network.Subnet{ID: "subnet-0a", VpcID: "vpc-0a", AZ: "us-east-1a",
			CIDR: netip.MustParsePrefix("10.0.1.0/24"), IPv6CIDR: netip.MustParsePrefix("2600:1f18:aaaa:bb00::/64")}
		v.Set(reflect.ValueOf(sn))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0), n)
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Uint64:
		if v.CanInt() {
			v.SetInt(int64(*n))
		} else {
			v.SetUint(uint64(*n))
		}
	}
}

// TestEveryDomainFieldIsCarried: a cluster and a backup with every
// exported field of the domain's types set go through Encode and Decode
// unchanged, but for the service's own bookkeeping. A field the domain
// gains fails this test until the format carries it (or it is listed
// here as the service's own).
func TestEveryDomainFieldIsCarried(t *testing.T) {
	t.Parallel()
	n := 0
	var c cloudhsm.Cluster
	var b cloudhsm.Backup
	fill(reflect.ValueOf(&c).Elem(), &n)
	fill(reflect.ValueOf(&b).Elem(), &n)
	var buf bytes.Buffer
	if err := snapshot.Encode(&buf, &cloudhsm.Snapshot{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Clusters: []*cloudhsm.Cluster{&c}, Backups: []*cloudhsm.Backup{&b}}); err != nil {
		t.Fatal(err)
	}
	back, err := snapshot.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// The service's own: ordering, cache keys, the CSR's partition (always
	// 1, made again from the CSR by Import).
	c.Seq, c.Version, c.Partition, b.Seq = 0, 0, 0, 0
	// A copy is a backup with a source backup.
	b.IsCopy = b.SourceBackup != ""
	if got := back.Clusters[0]; !reflect.DeepEqual(*got, c) {
		t.Errorf("a cluster lost %s", showDiff(*got, c))
	}
	if got := back.Backups[0]; !reflect.DeepEqual(*got, b) {
		t.Errorf("a backup lost %s", showDiff(*got, b))
	}
}

// TestLegacyIsCheckedAsVersion2: a version 0 or 1 document goes through
// version 2's conversion and checks, so that a subnet CIDR block of the
// wrong family (an IPv6 block as the IPv4 one, or the other way round) is
// refused in every version, with the same words.
func TestLegacyIsCheckedAsVersion2(t *testing.T) {
	t.Parallel()
	const c2 = `"account": "111122223333", "region": "us-east-1"`
	for _, tc := range []struct {
		name, legacy, v2, want string
	}{
		{"IPv6 as IPv4",
			`{"version": 1, "clusters": [{"Subnets": [{"ID": "subnet-0a", "AZ": "us-east-1a", "CIDR": "2600:1f18::/64"}]}]}`,
			`{"version": 2, "clusters": [{` + c2 + `, "subnets": [{"subnetId": "subnet-0a", "availabilityZone": "us-east-1a", "cidr": "2600:1f18::/64"}]}]}`,
			`clusters[0].subnets[0].cidr: "2600:1f18::/64" is not a CIDR block of the right family`},
		{"IPv4 as IPv6",
			`{"clusters": [{"Subnets": [{"ID": "subnet-0a", "AZ": "us-east-1a", "IPv6CIDR": "10.0.1.0/24"}]}]}`,
			`{"version": 2, "clusters": [{` + c2 + `, "subnets": [{"subnetId": "subnet-0a", "availabilityZone": "us-east-1a", "ipv6Cidr": "10.0.1.0/24"}]}]}`,
			`clusters[0].subnets[0].ipv6Cidr: "10.0.1.0/24" is not a CIDR block of the right family`},
		{"IPv4-mapped IPv6 as IPv4",
			`{"version": 1, "clusters": [{"Subnets": [{"ID": "subnet-0a", "AZ": "us-east-1a", "CIDR": "::ffff:10.0.1.0/120"}]}]}`,
			`{"version": 2, "clusters": [{` + c2 + `, "subnets": [{"subnetId": "subnet-0a", "availabilityZone": "us-east-1a", "cidr": "::ffff:10.0.1.0/120"}]}]}`,
			`clusters[0].subnets[0].cidr: "::ffff:10.0.1.0/120" is not a CIDR block of the right family`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, errLegacy := snapshot.Decode(strings.NewReader(tc.legacy))
			_, errV2 := snapshot.Decode(strings.NewReader(tc.v2))
			if errLegacy == nil || errV2 == nil {
				t.Fatalf("Decode accepted a CIDR block of the wrong family: legacy %v, version 2 %v", errLegacy, errV2)
			}
			if errLegacy.Error() != errV2.Error() {
				t.Errorf("legacy and version 2 are refused differently:\n%v\n%v", errLegacy, errV2)
			}
			if !strings.Contains(errLegacy.Error(), tc.want) {
				t.Errorf("error %q does not say %q", errLegacy, tc.want)
			}
		})
	}
}

// TestLegacyCopyIsItsSourceBackup: as in version 2, a legacy backup is a
// copy when it has a source backup; its IsCopy is read and ignored.
func TestLegacyCopyIsItsSourceBackup(t *testing.T) {
	t.Parallel()
	snap, err := snapshot.Decode(strings.NewReader(`{"version": 1, "backups": [
		{"ID": "backup-aaaaaaaaaaa", "IsCopy": true},
		{"ID": "backup-bbbbbbbbbbb", "SourceBackup": "backup-ccccccccccc", "SourceRegion": "us-west-2"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := []bool{snap.Backups[0].IsCopy, snap.Backups[1].IsCopy}; got[0] || !got[1] {
		t.Errorf("IsCopy of a backup without and with a source backup: %v, want [false true]", got)
	}
}
