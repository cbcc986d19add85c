package console_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"

	"github.com/cloudhsm-local/cloudhsm-local/internal/admin"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
)

// TestBrowserLive: open pages change within a second, without a reload,
// whoever made the change: an AWS client, the clock moved through the
// admin API, another console tab. The page is never reloaded: a marker
// set on window before the changes is still there after them.
func TestBrowserLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, server.Config{})
	a := e.sdk(acctA, "us-east-1")
	c := createCluster(t, a)

	estateTab, clusterTab, requestsTab, other := newTab(t), newTab(t), newTab(t), newTab(t)
	estateTab.open(e.url(""))
	clusterTab.open(e.url("clusters/" + *c.ClusterId))
	requestsTab.open(e.url("requests"))
	for _, tb := range []*tab{estateTab, clusterTab, requestsTab} {
		eval[bool](tb, `window.notReloaded = true`)
	}

	// An AWS client creates a cluster: the estate lists it.
	c2 := createCluster(t, e.sdk(acctB, "ap-south-1"))
	estateTab.waitFor(live, `!!document.querySelector('tr[data-cluster="`+*c2.ClusterId+`"]')`, "the estate to list a cluster an SDK created")
	// ... and the request log shows the call.
	requestsTab.waitFor(live, `document.getElementById('request-table').innerText.includes('ap-south-1')`, "the request log to show the SDK's call")

	// The admin API moves the clock: the cluster's state and the clock change.
	resp, err := e.hs.Client().Post(e.hs.URL+admin.Prefix+"clock/advance", "application/json", strings.NewReader(`{"duration":"1h"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("advance: %d %s", resp.StatusCode, body)
	}
	clusterTab.waitFor(live, text("#cluster-state")+` === 'UNINITIALIZED'`, "the cluster page to show the transition the clock made")
	clusterTab.waitFor(live, text("#clock-now")+` === '2026-03-01 10:00:00Z'`, "the header's clock to follow the advance")
	estateTab.waitFor(live, `document.querySelector('tr[data-cluster="`+*c.ClusterId+`"]').innerText.includes('UNINITIALIZED')`, "the estate to show the transition")

	// Another tab tags the cluster: the cluster tab shows the tag.
	other.open(e.url("clusters/" + *c.ClusterId))
	other.setField("#tag-key", "owner")
	other.setField("#tag-value", "alice")
	other.act("#tag-submit", true)
	clusterTab.waitFor(live, `!!document.querySelector('#tag-table') && document.querySelector('#tag-table').innerText.includes('alice')`, "the cluster tab to show the tag another tab added")

	// An SDK client deletes... no: it adds an HSM, and the clock's scheduler
	// (not a request) makes it ACTIVE.
	az := ""
	for k := range c.SubnetMapping {
		az = k
	}
	if _, err := a.CreateHsm(bg, &cloudhsmv2.CreateHsmInput{ClusterId: c.ClusterId, AvailabilityZone: aws.String(az)}); err != nil {
		t.Fatal(err)
	}
	clusterTab.waitFor(live, `!!document.querySelector('#hsm-table') && document.querySelector('#hsm-table').innerText.includes('CREATE_IN_PROGRESS')`, "the HSM an SDK created")
	e.advance(t, time.Minute)
	clusterTab.waitFor(live, `document.querySelector('#hsm-table').innerText.includes('ACTIVE') && document.getElementById('live-certs').innerText.includes('Cluster CSR')`, "the HSM to turn ACTIVE and the CSR to appear")

	for _, tb := range []*tab{estateTab, clusterTab, requestsTab} {
		if !eval[bool](tb, `window.notReloaded === true`) {
			t.Fatal("a page reloaded itself instead of updating in place")
		}
	}
}
