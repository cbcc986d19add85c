package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store/storetest"
	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit/pgtest"
)

// TestCopyEstate: copy-estate moves a data directory's estate into an
// empty database and back into a new data directory, unchanged, and
// refuses what would lose or mix data.
func TestCopyEstate(t *testing.T) {
	srcDir, backDir := t.TempDir(), filepath.Join(t.TempDir(), "new")
	src, err := store.OpenBolt(filepath.Join(srcDir, "state.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var muts []store.Mutation
	for i := range 50 {
		muts = append(muts, store.Mutation{Kind: "cluster", Key: fmt.Sprintf("c-%02d", i), Value: []byte{byte(i), 0, 0xff}})
	}
	muts = append(muts, store.Mutation{Kind: "meta", Key: "token", Value: []byte("secret")},
		store.Mutation{Kind: store.KindPlacement, Key: "111/us-east-1/subnet-1", Value: []byte("az")})
	if err := src.Submit(muts)(); err != nil {
		t.Fatal(err)
	}
	want, err := storetest.LoadAll(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	url := pgtest.Start(t).NewDatabase(t)

	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := runCopyEstate(args, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	if out, err := run("--from", srcDir, "--to", url); err != nil || !strings.Contains(out, fmt.Sprintf("copied %d records", len(want))) {
		t.Fatalf("copy to the database: %v\n%s", err, out)
	}
	if out, err := run("--from", url, "--to", backDir); err != nil {
		t.Fatalf("copy back: %v\n%s", err, out)
	}
	back, err := store.OpenBolt(filepath.Join(backDir, "state.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := storetest.LoadAll(back)
	_ = back.Close()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the round trip:\n got  %q\n want %q", got, want)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", srcDir, "--to", url}, "not empty"},
		{[]string{"--from", url, "--to", backDir}, "not empty"},
		{[]string{"--from", filepath.Join(t.TempDir(), "none"), "--to", filepath.Join(t.TempDir(), "x")}, "holds no estate"},
		{[]string{"--from", srcDir}, "give both --from and --to"},
	} {
		if out, err := run(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("copy-estate %q: %v (%s), want an error saying %q", c.args, err, out, c.want)
		}
	}
}

// TestCopyNamesEstatesWithoutPasswords: what copy-estate prints names a
// database without its password.
func TestCopyNamesEstatesWithoutPasswords(t *testing.T) {
	for _, where := range []string{"postgres://chl:s3cr3t-pw@db.internal:5432/estate", "postgresql://chl:s3cr3t-pw@db.internal/estate?sslmode=disable"} {
		got := describeEstate(where)
		if strings.Contains(got, "s3cr3t-pw") || !strings.Contains(got, "db.internal") {
			t.Errorf("describeEstate(%q) = %q", where, got)
		}
	}
	if got := describeEstate("/var/lib/cloudhsm-local"); got != "/var/lib/cloudhsm-local" {
		t.Errorf("a data directory is named %q", got)
	}
}
