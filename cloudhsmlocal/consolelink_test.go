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
