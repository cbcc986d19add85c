package admin_test

// A cluster imported in the middle of an HSM type migration or rollback
// carries on to its end, whatever the snapshot leaves out that has one
// possible value; a migration AWS could never run is refused, naming the
// item and field. Each case goes through the domain (Service.Import) and
// through the admin API, in version 2 and in version 1.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// migrationCase is a cluster in the middle of a migration, as a snapshot
// may hold it: fields left out are "".
type migrationCase struct {
	state, under, hsmType, target, previous, mode string
	hsmTypes                                      []string // of its HSMs
	degraded                                      int      // index of a DEGRADED HSM, or -1
}

const migratingID = "cluster-aaaaaaaaam2"

// importPath imports one cluster of a migrationCase into e.
type importPath struct {
	name string
	run  func(t *testing.T, e *env, mc migrationCase) error
}

var importPaths = []importPath{
	{"Service.Import", func(t *testing.T, e *env, mc migrationCase) error {
		sn := network.Subnet{ID: "subnet-0f1e2d3c4b5a69781", VpcID: "vpc-0a1b2c3d4e5f60718", AZ: "us-east-1a", CIDR: netip.MustParsePrefix("10.0.1.0/24")}
		c := &cloudhsm.Cluster{Tenant: cloudhsm.Tenant{Account: acctA, Region: "us-east-1"}, ID: migratingID, State: mc.state, StateBeforeDegraded: mc.under,
			HsmType: mc.hsmType, TargetHsmType: mc.target, PreviousHsmType: mc.previous, Mode: mc.mode, Subnets: []network.Subnet{sn}}
		for i, ht := range mc.hsmTypes {
			h := &cloudhsm.Hsm{ID: migratingHsm(i), AZ: sn.AZ, HsmType: ht, State: cloudhsm.HsmActive, Identity: &pki.HSMIdentity{Serial: "RCN0000000001"}}
			if i == mc.degraded {
				h.State = cloudhsm.HsmDegraded
			}
			c.Hsms = append(c.Hsms, h)
		}
		return e.srv.Service().Import(&cloudhsm.Snapshot{Clusters: []*cloudhsm.Cluster{c}})
	}},
	{"admin API, version 2", func(t *testing.T, e *env, mc migrationCase) error {
		c := vCluster(migratingID, map[string]any{"state": mc.state, "stateBeforeDegraded": mc.under, "hsmType": mc.hsmType,
			"migrationTargetHsmType": mc.target, "previousHsmType": mc.previous, "mode": mc.mode})
		var hsms []any
		for i, ht := range mc.hsmTypes {
			h := vHsm(migratingHsm(i), map[string]any{"hsmType": ht, "state": "ACTIVE"})
			if i == mc.degraded {
				h["state"] = "DEGRADED"
			}
			hsms = append(hsms, h)
		}
		c["hsms"] = hsms
		return importDoc(e, []any{c}, nil)
	}},
	{"admin API, version 1", func(t *testing.T, e *env, mc migrationCase) error {
		c := map[string]any{"Tenant": map[string]string{"Account": acctA, "Region": "us-east-1"}, "ID": migratingID,
			"State": mc.state, "StateBeforeDegraded": mc.under, "HsmType": mc.hsmType, "TargetHsmType": mc.target, "PreviousHsmType": mc.previous, "Mode": mc.mode,
			"Subnets": []any{map[string]string{"ID": "subnet-0f1e2d3c4b5a69781", "VpcID": "vpc-0a1b2c3d4e5f60718", "AZ": "us-east-1a", "CIDR": "10.0.1.0/24"}}}
		var hsms []any
		for i, ht := range mc.hsmTypes {
			h := map[string]any{"ID": migratingHsm(i), "AZ": "us-east-1a", "HsmType": ht, "State": "ACTIVE", "Identity": map[string]string{"Serial": "RCN0000000001"}}
			if i == mc.degraded {
				h["State"] = "DEGRADED"
			}
			hsms = append(hsms, h)
		}
		c["Hsms"] = hsms
		doc, _ := json.Marshal(map[string]any{"version": 1, "clusters": []any{c}})
		_, err := e.admin.Import(ctx, bytes.NewReader(doc))
		return err
	}},
}

func migratingHsm(i int) string { return "hsm-aaaaaaaaam" + string(rune('2'+i)) }

// TestImportCompletesMigrations: a cluster MODIFY_IN_PROGRESS without its
// target type (which made it ACTIVE with no HsmType), or without its own
// type, and one ROLLBACK_IN_PROGRESS without a due time (which never
// advanced) or a target, finish as the service would have finished them.
func TestImportCompletesMigrations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		mc        migrationCase
		wantState types.ClusterState
		wantType  string
	}{
		{"MODIFY_IN_PROGRESS without target", migrationCase{state: "MODIFY_IN_PROGRESS", hsmType: "hsm1.medium", hsmTypes: []string{"hsm2m.medium", "hsm1.medium"}, degraded: -1},
			types.ClusterStateActive, "hsm2m.medium"},
		{"MODIFY_IN_PROGRESS without any type", migrationCase{state: "MODIFY_IN_PROGRESS", hsmTypes: []string{"", ""}, degraded: -1},
			types.ClusterStateActive, "hsm2m.medium"},
		{"MODIFY_IN_PROGRESS under DEGRADED", migrationCase{state: "DEGRADED", under: "MODIFY_IN_PROGRESS", hsmType: "hsm1.medium", hsmTypes: []string{"hsm1.medium", "hsm1.medium"}, degraded: 1},
			types.ClusterStateDegraded, "hsm2m.medium"},
		{"ROLLBACK_IN_PROGRESS without due time or target", migrationCase{state: "ROLLBACK_IN_PROGRESS", hsmType: "hsm2m.medium", hsmTypes: []string{"hsm2m.medium", "hsm2m.medium"}, degraded: -1},
			types.ClusterStateActive, "hsm1.medium"},
		{"ROLLBACK_IN_PROGRESS without any type", migrationCase{state: "ROLLBACK_IN_PROGRESS", hsmTypes: []string{"", "hsm1.medium"}, degraded: -1},
			types.ClusterStateActive, "hsm1.medium"},
	} {
		for _, path := range importPaths {
			t.Run(tc.name+"/"+path.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, server.Config{})
				if err := path.run(t, e, tc.mc); err != nil {
					t.Fatalf("import: %v", err)
				}
				c := e.sdk(acctA, "us-east-1", 1)
				if got := clusterState(t, c, migratingID); got.State != types.ClusterState(tc.mc.state) {
					t.Fatalf("imported as %s, want %s", got.State, tc.mc.state)
				}
				// A delay per HSM (fast profile: half a second); a day is plenty.
				if _, err := e.admin.Advance(ctx, 24*time.Hour); err != nil {
					t.Fatal(err)
				}
				got := clusterState(t, c, migratingID)
				if got.State != tc.wantState || aws.ToString(got.HsmType) != tc.wantType {
					t.Fatalf("a day after the import: %s %q, want %s %s", got.State, aws.ToString(got.HsmType), tc.wantState, tc.wantType)
				}
				for _, h := range got.Hsms {
					if aws.ToString(h.HsmType) != tc.wantType {
						t.Errorf("HSM %s is %q, want %s", aws.ToString(h.HsmId), aws.ToString(h.HsmType), tc.wantType)
					}
				}
				if tc.wantType == "hsm2m.medium" {
					checkRollbackWindow(t, e, got)
				}
			})
		}
	}
}

// checkRollbackWindow: a migration imported without its rollback window
// has the one of a migration begun at the import.
func checkRollbackWindow(t *testing.T, e *env, got types.Cluster) {
	t.Helper()
	want := start.Add(24 * time.Hour)
	if exp := got.HsmTypeRollbackExpiration; exp == nil || !exp.Equal(want) {
		t.Errorf("HsmTypeRollbackExpiration %v, want %v (24 hours after the import)", exp, want)
	}
	if got.State == types.ClusterStateDegraded {
		return // a rollback waits for ACTIVE
	}
	// The window has just ended (a day has passed): the rollback is refused
	// by the window, not for want of a previous type.
	_, err := e.sdk(acctA, "us-east-1", 1).ModifyCluster(ctx, &cloudhsmv2.ModifyClusterInput{ClusterId: aws.String(migratingID), HsmType: aws.String("hsm1.medium")})
	if err == nil || !strings.Contains(err.Error(), "rollback window") {
		t.Errorf("rollback after the window: %v, want a refusal naming the rollback window", err)
	}
}

// TestImportRefusesImpossibleMigrations: what contradicts the one
// migration AWS runs is refused with the item and the field.
func TestImportRefusesImpossibleMigrations(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		mc    migrationCase
		field string
	}{
		{"MODIFY_IN_PROGRESS from hsm2m.medium", migrationCase{state: "MODIFY_IN_PROGRESS", hsmType: "hsm2m.medium", degraded: -1}, "hsmType"},
		{"MODIFY_IN_PROGRESS to hsm1.medium", migrationCase{state: "MODIFY_IN_PROGRESS", hsmType: "hsm1.medium", target: "hsm1.medium", degraded: -1}, "migrationTargetHsmType"},
		{"MODIFY_IN_PROGRESS from a previous hsm2m.medium", migrationCase{state: "MODIFY_IN_PROGRESS", previous: "hsm2m.medium", degraded: -1}, "previousHsmType"},
		{"MODIFY_IN_PROGRESS of a NON_FIPS cluster", migrationCase{state: "MODIFY_IN_PROGRESS", mode: "NON_FIPS", degraded: -1}, "NON_FIPS"},
		{"ROLLBACK_IN_PROGRESS from hsm1.medium", migrationCase{state: "ROLLBACK_IN_PROGRESS", hsmType: "hsm1.medium", degraded: -1}, "hsmType"},
		{"ROLLBACK_IN_PROGRESS to hsm2m.medium", migrationCase{state: "ROLLBACK_IN_PROGRESS", target: "hsm2m.medium", degraded: -1}, "migrationTargetHsmType"},
		{"DEGRADED under ROLLBACK_IN_PROGRESS from hsm1.medium", migrationCase{state: "DEGRADED", under: "ROLLBACK_IN_PROGRESS", hsmType: "hsm1.medium", hsmTypes: []string{""}, degraded: 0}, "hsmType"},
		{"a target on an ACTIVE cluster", migrationCase{state: "ACTIVE", hsmType: "hsm1.medium", target: "hsm2m.medium", degraded: -1}, "migrationTargetHsmType"},
	} {
		for _, path := range importPaths {
			t.Run(tc.name+"/"+path.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, server.Config{})
				err := path.run(t, e, tc.mc)
				if err == nil {
					t.Fatal("import accepted a migration AWS could never run")
				}
				var ae *admin.StatusError
				var de *cloudhsm.Error
				if !(errors.As(err, &ae) && ae.Status == http.StatusBadRequest) && !(errors.As(err, &de) && de.Kind == cloudhsm.KindInvalidRequest) {
					t.Fatalf("want a refusal of bad input, got %v", err)
				}
				for _, w := range []string{"clusters[0] (" + migratingID + ")", tc.field} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("refusal %q does not name %q", err, w)
					}
				}
				if n := countClusters(t, e.sdk(acctA, "us-east-1", 1)); n != 0 {
					t.Errorf("a refused import left %d clusters", n)
				}
			})
		}
	}
}
