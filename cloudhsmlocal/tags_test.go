package cloudhsmlocal_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudhsmv2/types"

	"github.com/cloudhsm-local/cloudhsm-local/cloudhsmlocal"
)

const tagError = "CloudHsmTagException"

func tagKV(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }

func tagRange(prefix string, from, to int) []types.Tag {
	var out []types.Tag
	for i := from; i < to; i++ {
		out = append(out, tagKV(fmt.Sprintf("%s%03d", prefix, i), fmt.Sprintf("v%d", i)))
	}
	return out
}

// listAllTags pages through ListTags by hand (bounded), failing on repeats.
func listAllTags(t *testing.T, c *cloudhsmv2.Client, id string, maxResults int32) []types.Tag {
	t.Helper()
	var out []types.Tag
	var token *string
	for page := 0; ; page++ {
		if page > 200 {
			t.Fatalf("ListTags pagination does not end (%d tags so far)", len(out))
		}
		in := &cloudhsmv2.ListTagsInput{ResourceId: aws.String(id), NextToken: token}
		if maxResults > 0 {
			in.MaxResults = aws.Int32(maxResults)
		}
		res, err := c.ListTags(ctx, in)
		if err != nil {
			t.Fatalf("ListTags page %d: %v", page, err)
		}
		if res.TagList == nil {
			t.Fatalf("ListTags page %d: TagList absent", page)
		}
		if maxResults > 0 && len(res.TagList) > int(maxResults) {
			t.Fatalf("ListTags page %d: %d tags, MaxResults %d", page, len(res.TagList), maxResults)
		}
		out = append(out, res.TagList...)
		if res.NextToken == nil || *res.NextToken == "" {
			return out
		}
		if token != nil && *token == *res.NextToken {
			t.Fatalf("ListTags page %d returned the token it was given (%d tags so far)", page, len(out))
		}
		token = res.NextToken
	}
}

func sortedTags(tags []types.Tag) []types.Tag {
	out := slices.Clone(tags)
	sort.Slice(out, func(i, j int) bool { return aws.ToString(out[i].Key) < aws.ToString(out[j].Key) })
	return out
}

// checkTagViews asserts ListTags and DescribeClusters' TagList both equal want
// (sorted by key).
func checkTagViews(t *testing.T, c *cloudhsmv2.Client, id string, want []types.Tag) {
	t.Helper()
	want = sortedTags(want)
	lt := listAllTags(t, c, id, 0)
	if !tagsEqual(lt, want) {
		t.Errorf("ListTags %s, want %s", tagString(lt), tagString(want))
	}
	dc := describe(t, c, id).TagList
	if !tagsEqual(dc, lt) {
		t.Errorf("DescribeClusters TagList %s differs from ListTags %s", tagString(dc), tagString(lt))
	}
}

// TestTagResourceAndUntag: add, overwrite, remove; both views agree.
func TestTagResourceAndUntag(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	in := hsm2m(subnets(1)...)
	in.TagList = []types.Tag{tagKV("zeta", "1"), tagKV("alpha", "2"), tagKV("Mid", "3")}
	cl := mustCreate(t, c, in)
	id := aws.ToString(cl.ClusterId)
	current := slices.Clone(in.TagList)
	checkTagViews(t, c, id, current)

	// Works in CREATE_IN_PROGRESS and after.
	steps := []struct {
		name  string
		tag   []types.Tag
		untag []string
		want  []types.Tag
	}{
		{"add", []types.Tag{tagKV("beta", "b")}, nil,
			[]types.Tag{tagKV("Mid", "3"), tagKV("alpha", "2"), tagKV("beta", "b"), tagKV("zeta", "1")}},
		{"overwrite and add", []types.Tag{tagKV("alpha", "two"), tagKV("gamma", "")}, nil,
			[]types.Tag{tagKV("Mid", "3"), tagKV("alpha", "two"), tagKV("beta", "b"), tagKV("gamma", ""), tagKV("zeta", "1")}},
		{"same value again", []types.Tag{tagKV("alpha", "two")}, nil,
			[]types.Tag{tagKV("Mid", "3"), tagKV("alpha", "two"), tagKV("beta", "b"), tagKV("gamma", ""), tagKV("zeta", "1")}},
		{"untag two", nil, []string{"zeta", "Mid"},
			[]types.Tag{tagKV("alpha", "two"), tagKV("beta", "b"), tagKV("gamma", "")}},
		{"untag is case-sensitive", nil, []string{"ALPHA"},
			[]types.Tag{tagKV("alpha", "two"), tagKV("beta", "b"), tagKV("gamma", "")}},
		{"unicode key and value", []types.Tag{tagKV("Ünïcode key", "välue with spaces: /=+-@.")}, nil,
			[]types.Tag{tagKV("alpha", "two"), tagKV("beta", "b"), tagKV("gamma", ""), tagKV("Ünïcode key", "välue with spaces: /=+-@.")}},
		{"untag all", nil, []string{"alpha", "beta", "gamma", "Ünïcode key"}, nil},
	}
	for i, st := range steps {
		if i == 2 {
			srv.Advance(time.Second)
		}
		if st.tag != nil {
			if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(id), TagList: st.tag}); err != nil {
				t.Fatalf("%s: TagResource: %v", st.name, err)
			}
		}
		if st.untag != nil {
			if _, err := c.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: aws.String(id), TagKeyList: st.untag}); err != nil {
				t.Fatalf("%s: UntagResource: %v", st.name, err)
			}
		}
		checkTagViews(t, c, id, st.want)
	}
	// No tags left: ListTags answers an empty list, DescribeClusters none.
	lt, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if lt.TagList == nil || len(lt.TagList) != 0 || lt.NextToken != nil {
		t.Errorf("ListTags of an untagged cluster: %v (nil %v), NextToken %v", lt.TagList, lt.TagList == nil, lt.NextToken)
	}
	// Unknown resources.
	for _, rid := range []string{"cluster-abcdefghijk", "backup-abcdefghijk"} {
		_, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(rid), TagList: []types.Tag{tagKV("a", "b")}})
		wantAPIError(t, err, notFound)
		_, err = c.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: aws.String(rid), TagKeyList: []string{"a"}})
		wantAPIError(t, err, notFound)
		_, err = c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(rid)})
		wantAPIError(t, err, notFound)
	}
}

// TestTagRefusals: duplicate keys, reserved keys, the 50-tag limit; a
// refused request changes nothing.
func TestTagRefusals(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	in := hsm2m(subnets(1)...)
	in.TagList = tagRange("k", 0, 49)
	cl := mustCreate(t, c, in)
	id := aws.ToString(cl.ClusterId)
	base := in.TagList

	cases := []struct {
		name string
		tags []types.Tag
		code string
	}{
		{"duplicate keys", []types.Tag{tagKV("new", "1"), tagKV("new", "2")}, tagError},
		{"duplicate existing key", []types.Tag{tagKV("k001", "1"), tagKV("k001", "1")}, tagError},
		{"aws: prefix", []types.Tag{tagKV("aws:cloudformation:stack-name", "x")}, tagError},
		{"aws: alone", []types.Tag{tagKV("aws:", "x")}, tagError},
		{"aws: prefix among valid tags", []types.Tag{tagKV("ok", "1"), tagKV("aws:x", "2")}, tagError},
		{"two new tags at 49", []types.Tag{tagKV("new1", "1"), tagKV("new2", "2")}, "CloudHsmResourceLimitExceededException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(id), TagList: tc.tags})
			wantAPIError(t, err, tc.code)
			checkTagViews(t, c, id, base)
		})
	}

	// Keys that merely contain "aws" are fine.
	if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(id), TagList: []types.Tag{tagKV("k000", "awsome:aws:")}}); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	base[0] = tagKV("k000", "awsome:aws:")
	// The 50th tag is accepted.
	if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(id), TagList: []types.Tag{tagKV("my-aws:key", "50th")}}); err != nil {
		t.Fatalf("50th tag: %v", err)
	}
	base = append(base, tagKV("my-aws:key", "50th"))
	checkTagViews(t, c, id, base)
	// The 51st is refused; overwriting at 50 is fine.
	_, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(id), TagList: []types.Tag{tagKV("k051", "51st")}})
	wantAPIError(t, err, "CloudHsmResourceLimitExceededException")
	_, err = c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(id), TagList: []types.Tag{tagKV("k010", "changed"), tagKV("k052", "new")}})
	wantAPIError(t, err, "CloudHsmResourceLimitExceededException")
	checkTagViews(t, c, id, base)
	if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(id), TagList: []types.Tag{tagKV("k010", "changed")}}); err != nil {
		t.Fatalf("overwrite at 50 tags: %v", err)
	}
	base[10] = tagKV("k010", "changed")
	checkTagViews(t, c, id, base)
	// After untagging one, one more fits.
	if _, err := c.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: aws.String(id), TagKeyList: []string{"k020"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(id), TagList: []types.Tag{tagKV("k051", "51st")}}); err != nil {
		t.Fatalf("after untag: %v", err)
	}
	base = append(slices.Delete(base, 20, 21), tagKV("k051", "51st"))
	checkTagViews(t, c, id, base)

	// CreateCluster applies the same rules to its TagList.
	for _, bad := range [][]types.Tag{{tagKV("dup", "1"), tagKV("dup", "2")}, {tagKV("aws:name", "x")}} {
		in := hsm2m(subnets(1)...)
		in.TagList = bad
		_, err := c.CreateCluster(ctx, in)
		wantAPIError(t, err, tagError)
	}
	if n := len(describeAll(t, c, nil)); n != 1 {
		t.Errorf("refused CreateCluster calls left %d clusters", n)
	}
	// 50 tags at creation are fine.
	in = hsm2m(subnets(1)...)
	in.TagList = tagRange("t", 0, 50)
	full := mustCreate(t, c, in)
	checkTagViews(t, c, aws.ToString(full.ClusterId), in.TagList)
	_, err = c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: full.ClusterId, TagList: []types.Tag{tagKV("one-more", "x")}})
	wantAPIError(t, err, "CloudHsmResourceLimitExceededException")
}

// TestListTagsPagination: NewListTagsPaginator with MaxResults 3 over 10
// tags, and manual paging with long keys.
func TestListTagsPagination(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	in := hsm2m(subnets(1)...)
	in.TagList = tagRange("tag-", 0, 10)
	slices.Reverse(in.TagList)
	id := aws.ToString(mustCreate(t, c, in).ClusterId)
	want := sortedTags(in.TagList)

	p := cloudhsmv2.NewListTagsPaginator(c, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(id), MaxResults: aws.Int32(3)})
	var got []types.Tag
	var sizes []int
	for p.HasMorePages() {
		if len(sizes) > 20 {
			t.Fatal("ListTags paginator does not end")
		}
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.TagList...)
		sizes = append(sizes, len(page.TagList))
	}
	if !tagsEqual(got, want) {
		t.Errorf("paginator: %s, want %s", tagString(got), tagString(want))
	}
	if !slices.Equal(sizes, []int{3, 3, 3, 1}) {
		t.Errorf("page sizes %v, want [3 3 3 1]", sizes)
	}
	for _, n := range []int32{1, 2, 9, 10, 100} {
		if got := listAllTags(t, c, id, n); !tagsEqual(got, want) {
			t.Errorf("MaxResults %d: %s", n, tagString(got))
		}
	}

	// Paging survives tags changing between pages: keys present throughout
	// appear exactly once.
	first, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(id), MaxResults: aws.Int32(4)})
	if err != nil || first.NextToken == nil {
		t.Fatalf("first page: %v", err)
	}
	// Remove the last key returned, add keys before the position: the token
	// still works, and every key present throughout appears exactly once, in
	// key order.
	if _, err := c.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: aws.String(id), TagKeyList: []string{"tag-003"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TagResource(ctx, &cloudhsmv2.TagResourceInput{ResourceId: aws.String(id), TagList: []types.Tag{tagKV("tag-0005", "x"), tagKV("tag-", "y")}}); err != nil {
		t.Fatal(err)
	}
	rest, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(id), NextToken: first.NextToken})
	if err != nil {
		t.Fatalf("token after changes: %v", err)
	}
	var keys []string
	for _, tg := range append(first.TagList, rest.TagList...) {
		keys = append(keys, aws.ToString(tg.Key))
	}
	if !slices.IsSorted(keys) {
		t.Errorf("keys across a change are not in order: %v", keys)
	}
	for i := range 10 {
		k := fmt.Sprintf("tag-%03d", i)
		if n := len(slices.DeleteFunc(slices.Clone(keys), func(x string) bool { return x != k })); n != 1 {
			t.Errorf("key %s listed %d times across a change: %v", k, n, keys)
		}
	}

	// A ListTags token belongs to its resource.
	other := mustCreate(t, c, func() *cloudhsmv2.CreateClusterInput {
		in := hsm2m(subnets(1)...)
		in.TagList = tagRange("tag-", 0, 10)
		return in
	}())
	_, err = c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: other.ClusterId, NextToken: first.NextToken})
	wantAPIError(t, err, invalidRequest)
	_, err = c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: aws.String(id), NextToken: aws.String("not-a-token")})
	wantAPIError(t, err, invalidRequest)
}

// TestListTagsPaginationLongKeys: keys of up to 128 characters page
// correctly, one per page.
func TestListTagsPaginationLongKeys(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	common := strings.Repeat("k", 100)
	var tags []types.Tag
	for i := range 5 {
		tags = append(tags, tagKV(common+fmt.Sprintf("%028d", i), fmt.Sprint(i)))
	}
	tags = append(tags, tagKV(strings.Repeat("é", 128), "accented"))
	in := hsm2m(subnets(1)...)
	in.TagList = tags
	id := aws.ToString(mustCreate(t, c, in).ClusterId)
	want := sortedTags(tags)
	for _, n := range []int32{1, 2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			got := listAllTags(t, c, id, n)
			if !tagsEqual(got, want) {
				t.Errorf("MaxResults %d: got %d tags, want %d", n, len(got), len(want))
			}
		})
	}
}

// R7-2: ListTags token for a long key (>64 bytes) whose key is removed
// between pages: keys sharing the first 64 bytes that were already returned
// are returned again.
func TestListTagsLongKeyRemovedBetweenPages(t *testing.T) {
	t.Parallel()
	srv := cloudhsmlocal.Start(t)
	c := client(srv)
	common := strings.Repeat("k", 100)
	in := hsm2m(subnets(1)...)
	for i := range 5 {
		in.TagList = append(in.TagList, tagKV(fmt.Sprintf("%s%d", common, i), fmt.Sprint(i)))
	}
	id := mustCreate(t, c, in).ClusterId
	first, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: id, MaxResults: aws.Int32(2)})
	if err != nil || first.NextToken == nil {
		t.Fatalf("first page: %v", err)
	}
	// Remove the key that ended the page (common+"1").
	if _, err := c.UntagResource(ctx, &cloudhsmv2.UntagResourceInput{ResourceId: id, TagKeyList: []string{common + "1"}}); err != nil {
		t.Fatal(err)
	}
	rest, err := c.ListTags(ctx, &cloudhsmv2.ListTagsInput{ResourceId: id, NextToken: first.NextToken})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, tg := range append(first.TagList, rest.TagList...) {
		keys = append(keys, strings.TrimPrefix(aws.ToString(tg.Key), common))
	}
	if !slices.Equal(keys, []string{"0", "1", "2", "3", "4"}) {
		t.Errorf("keys across the removal (suffixes after the common 100-char prefix): %v, want [0 1 2 3 4]", keys)
	}
}
