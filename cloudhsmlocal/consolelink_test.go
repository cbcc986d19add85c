package cloudhsmlocal_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// TestClusterURLServesThePage: the link a test prints opens the cluster's
// console page.
func TestClusterURLServesThePage(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	cl := mustCreate(t, client(srv), hsm2m(subnets(1)...))
	id := aws.ToString(cl.ClusterId)
	for _, u := range []string{srv.ClusterURL(id), srv.ConsoleURL()} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), id) {
			t.Errorf("GET %s: %d, page mentions %s: %v", u, resp.StatusCode, id, strings.Contains(string(body), id))
		}
	}
}

// TestBackupURLServesThePage: the link to a backup opens its console page,
// which names the backup and its cluster; a backup the server does not
// hold is not found.
func TestBackupURLServesThePage(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeCluster(t, srv, c)
	bs := backupsOf(t, c, aws.ToString(cl.ClusterId))
	if len(bs) != 1 {
		t.Fatalf("want the activation backup, got %d backups", len(bs))
	}
	id := aws.ToString(bs[0].BackupId)
	u := srv.BackupURL(id)
	if want := srv.URL + "/_cloudhsm-local/console/backups/" + id; u != want {
		t.Fatalf("BackupURL(%s) = %s, want %s", id, u, want)
	}
	status, body := getPage(t, u)
	if status != http.StatusOK || !strings.Contains(body, id) || !strings.Contains(body, aws.ToString(cl.ClusterId)) {
		t.Errorf("GET %s: %d, page mentions the backup: %v, its cluster: %v", u, status,
			strings.Contains(body, id), strings.Contains(body, aws.ToString(cl.ClusterId)))
	}
	if status, _ := getPage(t, srv.BackupURL("backup-aaaaaaaaaaa")); status != http.StatusNotFound {
		t.Errorf("GET the page of an unknown backup: %d, want 404", status)
	}
}

func getPage(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
