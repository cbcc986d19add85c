package network

// The neighbour EC2's security group rules and throttling.

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// CloudHSM's cluster group has inbound AND outbound TCP 2223-2225 rules
// whose source/destination is the group itself (KMS
// CloudHsmClusterInvalidConfigurationException; userguide configure-sg).
func TestGroupHasEgressRule(t *testing.T) {
	moto := startMoto(t)
	e := NewEC2(EC2Config{Endpoint: moto.URL})
	vpc := createVPC(t, e, "us-east-1", "10.61.0.0/16", false)
	id, err := e.CreateSecurityGroup(context.Background(), Tenant{"123456789012", "us-east-1"}, vpc.ID, "cluster-review10eg")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Egress []struct {
			Protocol string   `xml:"ipProtocol"`
			FromPort int      `xml:"fromPort"`
			ToPort   int      `xml:"toPort"`
			Groups   []string `xml:"groups>item>groupId"`
		} `xml:"securityGroupInfo>item>ipPermissionsEgress>item"`
	}
	if err := e.call(context.Background(), "us-east-1", "DescribeSecurityGroups", url.Values{"GroupId.1": {id}}, &resp); err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.Egress {
		if p.Protocol == "tcp" && p.FromPort == 2223 && p.ToPort == 2225 && len(p.Groups) == 1 && p.Groups[0] == id {
			return
		}
	}
	t.Errorf("group %s egress = %+v, want TCP 2223-2225 to %s", id, resp.Egress, id)
}

// EC2 throttling (RequestLimitExceeded; "Throttling" from some
// emulators) is retried whatever its HTTP status, as the SDKs do.
func TestThrottlingRetried(t *testing.T) {
	var n int
	f := newFakeEC2(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		n++
		if n == 1 {
			w.WriteHeader(400)
			io.WriteString(w, `<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>`)
			return
		}
		answerXML(200, fakeSubnets)(w, r, nil)
	})
	e := NewEC2(EC2Config{Endpoint: f.URL})
	e.backoff = func(int) time.Duration { return 0 }
	_, err := e.Resolve(context.Background(), Tenant{"123456789012", "eu-west-2"}, []string{"subnet-0ab1c79de3e0a0a01"})
	if err != nil {
		t.Errorf("one RequestLimitExceeded answer: %v (%d requests), want a retry and success", err, f.hits.Load())
	}
}
