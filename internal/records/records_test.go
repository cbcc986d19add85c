package records

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// fill sets every field reachable from v to a distinct non-zero value, so
// that a field the codec forgets fails the round trip.
func fill(t *testing.T, v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)) + string(rune('a'+*n/26%26)))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint64:
		v.SetUint(uint64(*n) + 1000)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), n)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(t, s.Index(i), n)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k, n)
		fill(t, e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		switch v.Type() {
		case reflect.TypeOf(time.Time{}):
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, *n*1000, time.UTC)))
			return
		case reflect.TypeOf(netip.Prefix{}):
			v.Set(reflect.ValueOf(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(*n), 0, 0}), 24)))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), n)
			}
		}
	default:
		t.Fatalf("fill: unhandled kind %s", v.Kind())
	}
}

func TestClusterCodecRoundTrip(t *testing.T) {
	var c cloudhsm.Cluster
	n := 0
	fill(t, reflect.ValueOf(&c).Elem(), &n)
	got, err := DecodeCluster(EncodeCluster(&c))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &c) {
		a, _ := json.Marshal(&c)
		b, _ := json.Marshal(got)
		t.Fatalf("round trip differs:\nwant %s\ngot  %s", a, b)
	}
}

func TestBackupCodecRoundTrip(t *testing.T) {
	var b cloudhsm.Backup
	n := 0
	fill(t, reflect.ValueOf(&b).Elem(), &n)
	got, err := DecodeBackup(EncodeBackup(&b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &b) {
		t.Fatalf("round trip differs:\nwant %+v\ngot  %+v", b, *got)
	}
}

func TestCodecReadsJSONRecords(t *testing.T) {
	c := &cloudhsm.Cluster{ID: "cluster-aaaaaaaaaaa", Tenant: cloudhsm.Tenant{Account: "111122223333", Region: "us-east-1"}, State: cloudhsm.ClusterActive}
	b, _ := json.Marshal(c)
	got, err := DecodeCluster(b)
	if err != nil || got.ID != c.ID || got.State != cloudhsm.ClusterActive {
		t.Fatalf("%v %+v", err, got)
	}
}

func TestCodecRefusesDamagedRecords(t *testing.T) {
	var c cloudhsm.Cluster
	n := 0
	fill(t, reflect.ValueOf(&c).Elem(), &n)
	enc := EncodeCluster(&c)
	for cut := 0; cut < len(enc); cut += 7 {
		if _, err := DecodeCluster(enc[:cut]); err == nil {
			t.Fatalf("a record cut at %d of %d bytes decoded", cut, len(enc))
		}
	}
	if _, err := DecodeCluster(append(enc, 0)); err == nil {
		t.Fatal("trailing bytes accepted")
	}
}

func FuzzDecodeCluster(f *testing.F) {
	var c cloudhsm.Cluster
	n := 0
	fill(&testing.T{}, reflect.ValueOf(&c).Elem(), &n)
	f.Add(EncodeCluster(&c))
	f.Add([]byte{formatCluster1})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeCluster(b)
		_, _ = DecodeBackup(b)
	})
}

func BenchmarkDecodeCluster(b *testing.B) {
	var c cloudhsm.Cluster
	n := 0
	fill(&testing.T{}, reflect.ValueOf(&c).Elem(), &n)
	c.Hsms = nil
	data := EncodeCluster(&c)
	b.ReportMetric(float64(len(data)), "bytes/record")
	for b.Loop() {
		if _, err := DecodeCluster(data); err != nil {
			b.Fatal(err)
		}
	}
}

// Records written before PreviousHsmType (format 1) and before History
// (format 2) existed still load.
func TestClusterOlderFormatsStillLoad(t *testing.T) {
	c := &cloudhsm.Cluster{ID: "cluster-aaaaaaaaaaa", State: cloudhsm.ClusterActive, HsmType: "hsm2m.medium", PreviousHsmType: "hsm1.medium"}
	rec := EncodeCluster(c) // format 3, ending with PreviousHsmType and an empty History
	if rec[0] != formatCluster3 || rec[len(rec)-1] != 0 {
		t.Fatalf("format 3 should end with an empty History")
	}
	v2 := append([]byte{formatCluster2}, rec[1:len(rec)-1]...)
	got, err := DecodeCluster(v2)
	if err != nil || got.ID != c.ID || got.PreviousHsmType != c.PreviousHsmType || got.History() != nil {
		t.Fatalf("format 2: %v %+v", err, got)
	}
	c.PreviousHsmType = ""
	rec = EncodeCluster(c)
	v1 := append([]byte{formatCluster1}, rec[1:len(rec)-2]...) // without the empty PreviousHsmType and History
	got, err = DecodeCluster(v1)
	if err != nil || got.ID != c.ID || got.HsmType != c.HsmType {
		t.Fatalf("format 1: %v %+v", err, got)
	}
}

// TestClusterHistoryRoundTrip: a cluster's history comes back whole, known
// states and causes and others alike.
func TestClusterHistoryRoundTrip(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	c := &cloudhsm.Cluster{ID: "cluster-aaaaaaaaaaa", State: cloudhsm.ClusterActive, Created: created}
	want := []cloudhsm.Transition{
		{To: cloudhsm.ClusterCreateInProgress, At: created, Cause: "CreateCluster"},
		{From: cloudhsm.ClusterCreateInProgress, To: cloudhsm.ClusterUninitialized, At: created.Add(500 * time.Millisecond), Cause: cloudhsm.CauseClock},
		{From: cloudhsm.ClusterUninitialized, To: cloudhsm.ClusterActive, At: created.Add(-time.Hour), Cause: "a cause of an imported estate"},
	}
	if err := c.SetHistory(want); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeCluster(EncodeCluster(c))
	if err != nil {
		t.Fatal(err)
	}
	h := got.History()
	if len(h) != len(want) {
		t.Fatalf("history %+v, want %+v", h, want)
	}
	for i := range want {
		if h[i].From != want[i].From || h[i].To != want[i].To || !h[i].At.Equal(want[i].At) || h[i].Cause != want[i].Cause {
			t.Errorf("history[%d] = %+v, want %+v", i, h[i], want[i])
		}
	}
}
