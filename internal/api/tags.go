package api

import (
	"context"
)

// DefaultTagsPerPage is ListTags' page size when MaxResults is absent.
const DefaultTagsPerPage = 100

func (a *API) tagResource(ctx context.Context, c *Caller, body []byte) (any, error) {
	var in struct {
		ResourceId string
		TagList    []tagIn
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return nil, a.svc.TagResource(c.Tenant, in.ResourceId, tagsIn(in.TagList))
}

func (a *API) untagResource(ctx context.Context, c *Caller, body []byte) (any, error) {
	var in struct {
		ResourceId string
		TagKeyList []string
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return nil, a.svc.UntagResource(c.Tenant, in.ResourceId, present(in.TagKeyList))
}

// maxTokenKeyBytes bounds the tag key carried in a ListTags token, so that
// tokens stay within the model's 256-character NextToken limit.
const maxTokenKeyBytes = 96

func (a *API) listTags(ctx context.Context, c *Caller, body []byte) (any, error) {
	var in struct {
		ResourceId string
		NextToken  string
		MaxResults *int32
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	query := "ListTags|" + in.ResourceId
	var after string
	if in.NextToken != "" {
		pos, err := a.tokens.read(in.NextToken, query, c.Tenant)
		if err != nil {
			return nil, err
		}
		after = string(pos)
	}
	tags, more, err := a.svc.ListTags(c.Tenant, in.ResourceId, after, pageSize(in.MaxResults, DefaultTagsPerPage))
	if err != nil {
		return nil, err
	}
	out := struct {
		TagList   []tagJSON `json:"TagList"`
		NextToken string    `json:"NextToken,omitempty"`
	}{TagList: make([]tagJSON, len(tags))}
	for i, t := range tags {
		out.TagList[i] = tagJSON{Key: t.Key, Value: t.Value}
	}
	if more && len(tags) > 0 {
		last := tags[len(tags)-1].Key
		if len(last) > maxTokenKeyBytes {
			last = last[:maxTokenKeyBytes]
		}
		out.NextToken = a.tokens.make(query, c.Tenant, []byte(last))
	}
	return out, nil
}
