package cloudhsmlocal_test

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

// createN creates n single-subnet clusters and returns their ids in order.
func createN(t *testing.T, c *cloudhsmv2.Client, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = aws.ToString(mustCreate(t, c, hsm2m(subnets(1)...)).ClusterId)
	}
	return ids
}

// pageThrough follows NextToken by hand with maxResults per page, calling
// between(page number, ids so far) after every page that has a NextToken.
// It returns the ids in the order received and the page sizes.
func pageThrough(t *testing.T, c *cloudhsmv2.Client, maxResults int32, filters map[string][]string, between func(page int, seen []string)) ([]string, []int) {
	t.Helper()
	var ids []string
	var sizes []int
	var token *string
	for page := 0; ; page++ {
		if page > 500 {
			t.Fatal("pagination does not end")
		}
		in := &cloudhsmv2.DescribeClustersInput{NextToken: token, Filters: filters}
		if maxResults > 0 {
			in.MaxResults = aws.Int32(maxResults)
		}
		out, err := c.DescribeClusters(ctx, in)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if maxResults > 0 && len(out.Clusters) > int(maxResults) {
			t.Fatalf("page %d has %d clusters, MaxResults %d", page, len(out.Clusters), maxResults)
		}
		ids = append(ids, clusterIDs(out.Clusters)...)
		sizes = append(sizes, len(out.Clusters))
		if out.NextToken == nil || *out.NextToken == "" {
			return ids, sizes
		}
		if len(out.Clusters) == 0 {
			t.Errorf("page %d is empty but has a NextToken", page)
		}
		if token != nil && *token == *out.NextToken {
			t.Fatalf("page %d returned the token it was given", page)
		}
		token = out.NextToken
		if between != nil {
			between(page, ids)
		}
	}
}

// TestDescribeClustersPagination: 60 clusters, 7 per page, every cluster
// exactly once, in creation order; the SDK paginator agrees.
func TestDescribeClustersPagination(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	want := createN(t, c, 60)

	got, sizes := pageThrough(t, c, 7, nil, nil)
	if !slices.Equal(got, want) {
		t.Errorf("manual paging:\n got %v\nwant %v", got, want)
	}
	if !slices.Equal(sizes, []int{7, 7, 7, 7, 7, 7, 7, 7, 4}) {
		t.Errorf("page sizes %v", sizes)
	}

	p := cloudhsmv2.NewDescribeClustersPaginator(c, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(7)})
	var viaSDK []string
	pages := 0
	for p.HasMorePages() {
		if pages++; pages > 100 {
			t.Fatal("paginator does not end")
		}
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		viaSDK = append(viaSDK, clusterIDs(out.Clusters)...)
	}
	if !slices.Equal(viaSDK, want) || pages != 9 {
		t.Errorf("paginator: %d pages, %d clusters, same order: %v", pages, len(viaSDK), slices.Equal(viaSDK, want))
	}

	// Every page size from 1 to 25 lists everything once, in order.
	for _, n := range []int32{1, 2, 13, 25} {
		if got, _ := pageThrough(t, c, n, nil, nil); !slices.Equal(got, want) {
			t.Errorf("MaxResults %d: %d clusters, in order: %v", n, len(got), slices.Equal(got, want))
		}
	}

	// Paging a filtered list: the states filter over a mix.
	srv.Advance(time.Second)
	for _, id := range want[10:20] {
		if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
	}
	fresh := createN(t, c, 5)
	wantUninit := append(slices.Clone(want[:10]), want[20:]...)
	got, _ = pageThrough(t, c, 4, map[string][]string{"states": {"UNINITIALIZED"}}, nil)
	if !slices.Equal(got, wantUninit) {
		t.Errorf("states=UNINITIALIZED paged: got %d, want %d, equal %v", len(got), len(wantUninit), slices.Equal(got, wantUninit))
	}
	got, _ = pageThrough(t, c, 3, map[string][]string{"states": {"CREATE_IN_PROGRESS", "DELETE_IN_PROGRESS"}}, nil)
	if wantMix := append(slices.Clone(want[10:20]), fresh...); !slices.Equal(got, wantMix) {
		t.Errorf("two states paged: got %v, want %v", got, wantMix)
	}
	// A clusterIds filter larger than a page.
	pick := []string{want[59], want[3], fresh[2], want[0], want[31]}
	got, _ = pageThrough(t, c, 2, map[string][]string{"clusterIds": pick}, nil)
	if wantPick := []string{want[0], want[3], want[31], want[59], fresh[2]}; !slices.Equal(got, wantPick) {
		t.Errorf("clusterIds paged: got %v, want %v", got, wantPick)
	}
}

// TestDescribeClustersDefaultPageSize: without MaxResults a page holds 25.
func TestDescribeClustersDefaultPageSize(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	want := createN(t, c, 30)
	out, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Clusters) != 25 || out.NextToken == nil {
		t.Fatalf("default page: %d clusters, NextToken %v", len(out.Clusters), out.NextToken != nil)
	}
	got, sizes := pageThrough(t, c, 0, nil, nil)
	if !slices.Equal(got, want) || !slices.Equal(sizes, []int{25, 5}) {
		t.Errorf("default paging: sizes %v, in order %v", sizes, slices.Equal(got, want))
	}
}

// TestDescribeClustersPaginationWhileChanging: clusters created and deleted
// between pages. No cluster is returned twice, and every cluster that
// existed throughout is returned.
func TestDescribeClustersPaginationWhileChanging(t *testing.T) {
	t.Parallel()
	for _, pageSize := range []int32{1, 3, 7} {
		t.Run(fmt.Sprint(pageSize), func(t *testing.T) {
			t.Parallel()
			srv := cloudhsmlocal.Start(t)
			c := client(srv)
			initial := createN(t, c, 40)
			srv.Advance(time.Second) // UNINITIALIZED: deletable
			deleted := map[string]bool{}
			var created []string
			del := func(id string) {
				if deleted[id] {
					return
				}
				if _, err := c.DeleteCluster(ctx, &cloudhsmv2.DeleteClusterInput{ClusterId: aws.String(id)}); err != nil {
					t.Fatalf("DeleteCluster %s: %v", id, err)
				}
				deleted[id] = true
			}
			got, _ := pageThrough(t, c, pageSize, nil, func(page int, seen []string) {
				if page >= 12 {
					return
				}
				last := seen[len(seen)-1]
				i := slices.Index(initial, last)
				switch page % 4 {
				case 0:
					// The cluster the token points after, and the next one.
					if i >= 0 {
						del(last)
						if i+1 < len(initial) {
							del(initial[i+1])
						}
					}
				case 1:
					// One already returned, one far ahead.
					del(seen[0])
					if i >= 0 && i+5 < len(initial) {
						del(initial[i+5])
					}
				case 2:
					created = append(created, createN(t, c, 2)...)
				case 3:
					created = append(created, createN(t, c, 1)...)
					if i >= 0 && i+2 < len(initial) {
						del(initial[i+2])
					}
				}
				// Let deleted clusters go all the way: DELETED, then removed.
				srv.Advance(2 * time.Hour)
			})
			seen := map[string]int{}
			for _, id := range got {
				seen[id]++
				if seen[id] == 2 {
					t.Errorf("cluster %s returned twice", id)
				}
			}
			for _, id := range initial {
				if !deleted[id] && seen[id] == 0 {
					t.Errorf("cluster %s existed throughout and was skipped", id)
				}
			}
			// Order is creation order among what was returned.
			order := append(slices.Clone(initial), created...)
			pos := func(id string) int { return slices.Index(order, id) }
			for k := 1; k < len(got); k++ {
				if pos(got[k-1]) > pos(got[k]) {
					t.Errorf("%s returned before %s, created earlier", got[k-1], got[k])
				}
			}
			if len(deleted) == 0 || len(created) == 0 {
				t.Fatalf("the test did not change anything: %d deleted, %d created", len(deleted), len(created))
			}
		})
	}
}

// TestDescribeClustersNextTokenRefusals: tokens are opaque and bound to the
// account, region and filters they were issued for.
func TestDescribeClustersNextTokenRefusals(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	const acctA, acctB = "111111111111", "222222222222"
	a := clientFor(srv, acctA, "us-east-1")
	ids := createN(t, a, 6)
	// The other tenants have clusters too, so that a page would exist there.
	createN(t, clientFor(srv, acctB, "us-east-1"), 6)
	createN(t, clientFor(srv, acctA, "eu-west-1"), 6)

	first, err := a.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	tok := aws.ToString(first.NextToken)
	if tok == "" {
		t.Fatal("no NextToken")
	}
	// Opaque: no cluster id, no bare number, within the model's 256 chars.
	if len(tok) > 256 {
		t.Errorf("NextToken is %d chars", len(tok))
	}
	for _, id := range ids {
		if strings.Contains(tok, id) || strings.Contains(tok, strings.TrimPrefix(id, "cluster-")) {
			t.Errorf("NextToken %q reveals cluster %s", tok, id)
		}
	}
	if regexp.MustCompile(`^[0-9]+$`).MatchString(tok) {
		t.Errorf("NextToken %q is a bare number", tok)
	}

	// The token works, repeatedly, with another page size.
	for _, n := range []int32{2, 2, 3} {
		out, err := a.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(n), NextToken: aws.String(tok)})
		if err != nil {
			t.Fatalf("the issued token was refused: %v", err)
		}
		if got := clusterIDs(out.Clusters); !slices.Equal(got, ids[2:2+n]) {
			t.Errorf("page after the token: %v, want %v", got, ids[2:2+n])
		}
	}

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cases := []struct {
		name    string
		client  *cloudhsmv2.Client
		token   string
		filters map[string][]string
	}{
		{"garbage", a, "garbage", nil},
		{"a number", a, "2", nil},
		{"a cluster id", a, ids[1], nil},
		{"base64 of a number", a, "MTA", nil},
		{"first char changed", a, flip(tok, 0), nil},
		{"middle char changed", a, flip(tok, len(tok)/2), nil},
		{"second-to-last char changed", a, flip(tok, len(tok)-2), nil},
		{"truncated", a, tok[:len(tok)-2], nil},
		{"extended", a, tok + "AA", nil},
		{"another account", clientFor(srv, acctB, "us-east-1"), tok, nil},
		{"another region", clientFor(srv, acctA, "eu-west-1"), tok, nil},
		{"default account", client(srv), tok, nil},
		{"another filter set", a, tok, map[string][]string{"states": {"CREATE_IN_PROGRESS"}}},
		{"an added id filter", a, tok, map[string][]string{"clusterIds": ids}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{NextToken: aws.String(tc.token), Filters: tc.filters, MaxResults: aws.Int32(2)})
			wantAPIError(t, err, invalidRequest)
		})
	}

	// A token of a filtered query works only with the same filters (in any
	// order of values) and not without them.
	f := map[string][]string{"clusterIds": {ids[0], ids[1], ids[2], ids[3]}}
	out, err := a.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: f, MaxResults: aws.Int32(2)})
	if err != nil || out.NextToken == nil {
		t.Fatalf("filtered first page: %v", err)
	}
	_, err = a.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{NextToken: out.NextToken, MaxResults: aws.Int32(2)})
	wantAPIError(t, err, invalidRequest)
	_, err = a.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{NextToken: out.NextToken, Filters: map[string][]string{"clusterIds": {ids[0], ids[1], ids[2]}}})
	wantAPIError(t, err, invalidRequest)
	// Filter sets that differ only in how values are split, or in which key
	// a value belongs to, are other filter sets. (s is sorted so that the
	// merged values line up with the canonical order of the real ones.)
	s := sortedCopy(ids[:4])
	for name, other := range map[string]map[string][]string{
		"values merged":       {"clusterIds": {s[0] + "," + s[1], s[2], s[3]}},
		"one value":           {"clusterIds": {s[0] + "," + s[1] + "," + s[2] + "," + s[3]}},
		"a key in a value":    {"clusterIds": {s[0], s[1], s[2], s[3] + "|states=UNINITIALIZED"}},
		"an extra states key": {"clusterIds": {s[0], s[1], s[2], s[3]}, "states": {"UNINITIALIZED"}},
	} {
		t.Run("filters "+name, func(t *testing.T) {
			_, err := a.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{NextToken: out.NextToken, Filters: other})
			wantAPIError(t, err, invalidRequest)
		})
	}
	withState := map[string][]string{"clusterIds": {s[0], s[1], s[2]}, "states": {"UNINITIALIZED", "CREATE_IN_PROGRESS"}}
	ws, err := a.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{Filters: withState, MaxResults: aws.Int32(2)})
	if err != nil || ws.NextToken == nil {
		t.Fatalf("first page with states: %v", err)
	}
	t.Run("filters a key smuggled into a value", func(t *testing.T) {
		smuggled := map[string][]string{"clusterIds": {s[0], s[1], s[2] + "|states=CREATE_IN_PROGRESS,UNINITIALIZED"}}
		_, err := a.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{NextToken: ws.NextToken, Filters: smuggled})
		wantAPIError(t, err, invalidRequest)
	})

	again, err := a.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{NextToken: out.NextToken, Filters: map[string][]string{"clusterIds": {ids[3], ids[2], ids[1], ids[0]}}})
	if err != nil {
		t.Fatalf("same filters, values reordered: %v", err)
	}
	if got := clusterIDs(again.Clusters); !slices.Equal(got, ids[2:4]) {
		t.Errorf("second filtered page %v, want %v", got, ids[2:4])
	}
}

// R7-3: a NextToken from before an admin reset, used after a restart on
// the same data dir, is accepted and silently skips new clusters, because
// the creation sequence restarts from the highest surviving record.
func TestTokenAfterResetAndRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir))
	c := client(srv)
	createN(t, c, 4)
	page, err := c.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(3)})
	if err != nil || page.NextToken == nil {
		t.Fatalf("page: %v", err)
	}
	token := page.NextToken
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/_cloudhsm-local/reset", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reset: %v %v", resp, err)
	}
	resp.Body.Close()
	srv.Close()

	srv2 := cloudhsmlocal.Start(t, cloudhsmlocal.WithDataDir(dir))
	c2 := client(srv2)
	fresh := createN(t, c2, 4)
	out, err := c2.DescribeClusters(ctx, &cloudhsmv2.DescribeClustersInput{MaxResults: aws.Int32(3), NextToken: token})
	if err == nil {
		// Accepted: then it must not hide clusters that did not exist when
		// the token was made.
		got := clusterIDs(out.Clusters)
		if !slices.Equal(got, fresh[:min(3, len(fresh))]) {
			t.Errorf("stale token after reset+restart returned %v (new clusters %v): new clusters skipped", got, fresh)
		}
	}
}
