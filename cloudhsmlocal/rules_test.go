package cloudhsmlocal_test

// Rules that hold across states: what a migration, a degraded HSM or a
// backup's HSM type allow.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"
	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// degradeHsm marks an HSM DEGRADED through the admin API.
func degradeHsm(t *testing.T, srv *cloudhsmlocal.Server, clusterID, hsmID string) {
	t.Helper()
	body := fmt.Sprintf(`{"account":%q,"region":%q,"clusterId":%q,"hsmId":%q}`, cloudhsmlocal.DefaultAccount, cloudhsmlocal.DefaultRegion, clusterID, hsmID)
	resp, err := http.Post(srv.URL+"/_cloudhsm-local/hsms/degrade", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("degrade: HTTP %d", resp.StatusCode)
	}
}

// A rollback asked for while the migration still runs is refused, never
// answered 200 and then ignored.
func TestRollbackDuringMigrationRefused(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	id := hsm1ClusterWithTwoHsms(t, srv, c)
	if _, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: &id, HsmType: aws.String("hsm2m.medium")}); err != nil {
		t.Fatal(err)
	}
	out, err := c.ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: &id, HsmType: aws.String("hsm1.medium")})
	if err == nil && out.Cluster.State != types.ClusterStateRollbackInProgress {
		srv.Advance(2 * stepDelay)
		got := describe(t, c, id)
		t.Fatalf("ModifyCluster HsmType=hsm1.medium during MODIFY_IN_PROGRESS answered 200 (%s), and the cluster then became %s %s: the request was silently ignored",
			out.Cluster.State, got.State, aws.ToString(got.HsmType))
	}
	if err != nil {
		wantAPIError(t, err, codeInvalidRequest, "until that completes")
	}
}

// While the only HSM of an UNINITIALIZED cluster is DEGRADED, the
// cluster is still uninitialized: one HSM only, and its CSR stays visible.
func TestDegradedUninitializedClusterKeepsItsRules(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, h := clusterWithCSR(t, srv, c, nil)
	id := *cl.ClusterId
	degradeHsm(t, srv, id, *h.HsmId)
	got := describe(t, c, id)
	if got.State != types.ClusterStateDegraded {
		t.Fatalf("cluster is %s", got.State)
	}
	if got.Certificates == nil || got.Certificates.ClusterCsr == nil {
		t.Errorf("the CSR vanished while the uninitialized cluster is DEGRADED: %+v", got.Certificates)
	}
	_, err := c.CreateHsm(ctx, createHsmInput(id, sortedAZsOf(cl)[1], ""))
	if err == nil {
		t.Fatalf("second HSM accepted in a never-initialized cluster (DEGRADED over UNINITIALIZED)")
	}
	wantAPIError(t, err, codeInvalidRequest, "already contains an HSM but has not yet been fully activated")
}

// R5: ModifyCluster refuses hsm2m.medium -> hsm1.medium, so a backup of
// hsm2m.medium HSMs must not become an hsm1.medium cluster either.
func TestHsm2mBackupIntoHsm1Refused(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	cl, _ := activeCluster(t, srv, c) // hsm2m.medium, FIPS
	b := backupsOf(t, c, *cl.ClusterId)[0]
	if aws.ToString(b.HsmType) != "hsm2m.medium" {
		t.Fatalf("backup HsmType %s", aws.ToString(b.HsmType))
	}
	out, err := c.CreateCluster(ctx, &cloudhsmv2.CreateClusterInput{HsmType: aws.String("hsm1.medium"), SubnetIds: subnets(1), SourceBackupId: b.BackupId})
	if err == nil {
		t.Fatalf("hsm2m.medium backup restored into a %s cluster (ModifyCluster refuses that direction)", aws.ToString(out.Cluster.HsmType))
	}
	wantAPIError(t, err, codeInvalidRequest, "hsm2m.medium")
}
