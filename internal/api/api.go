// Package api owns the CloudHSM v2 operations as the wire sees them: the
// routing table from operation name to handler, validation of every input
// against the service model's constraint table, the filter and pagination
// rules, the mapping of domain refusals to AWS error codes, and the shaping
// of domain objects into AWS's output members.
package api

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/cloudhsm-local/cloudhsm-local/internal/awsjson"
	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/model"
)

// Caller is who sent a request, as authentication established it.
type Caller struct {
	Tenant      cloudhsm.Tenant
	AccessKeyID string
}

// API serves the 18 operations over a domain Service.
type API struct {
	svc      *cloudhsm.Service
	model    *model.Model
	routes   map[string]handlerFunc // the routing table, checked against model
	tokens   tokens
	clusters *clusterCache
	pages    *pagePool
}

// New returns the API for svc. It refuses to start when the routing table
// and the service model disagree on the operations, rather than answering
// their requests with an internal failure (or as unknown) later.
func New(svc *cloudhsm.Service) (*API, error) {
	m, err := model.Load()
	if err != nil {
		return nil, fmt.Errorf("load service model: %w", err)
	}
	return newAPI(svc, m, routes)
}

// newAPI is New with the routing table given; the table is checked before
// svc is used.
func newAPI(svc *cloudhsm.Service, m *model.Model, table map[string]handlerFunc) (*API, error) {
	if err := checkRoutes(m, table); err != nil {
		return nil, err
	}
	return &API{svc: svc, model: m, routes: table, tokens: tokens{secret: svc.TokenSecret()}, clusters: newClusterCache(20000), pages: &pagePool{}}, nil
}

// checkRoutes reports every disagreement between the routing table and the
// model's operations: an operation of the model without a handler would be
// answered UnknownOperationException, and a route the model does not know
// could not have its input checked (every request to it would be a
// CloudHsmInternalFailureException).
func checkRoutes(m *model.Model, table map[string]handlerFunc) error {
	var errs []error
	for _, op := range m.Operations() {
		if _, ok := table[op]; !ok {
			errs = append(errs, fmt.Errorf("api: operation %s of the service model has no handler in the routing table", op))
		}
	}
	var extra []string
	for op := range table {
		if !m.HasOperation(op) {
			extra = append(extra, op)
		}
	}
	sort.Strings(extra)
	for _, op := range extra {
		errs = append(errs, fmt.Errorf("api: route %s is not an operation of the service model, so its input cannot be validated", op))
	}
	return errors.Join(errs...)
}

type handlerFunc func(a *API, ctx context.Context, c *Caller, body input) (any, error)

// routes is the routing table: every operation of the API and its handler.
var routes = map[string]handlerFunc{
	"CopyBackupToRegion":     (*API).copyBackupToRegion,
	"CreateCluster":          (*API).createCluster,
	"CreateHsm":              (*API).createHsm,
	"DeleteBackup":           (*API).deleteBackup,
	"DeleteCluster":          (*API).deleteCluster,
	"DeleteHsm":              (*API).deleteHsm,
	"DeleteResourcePolicy":   (*API).deleteResourcePolicy,
	"DescribeBackups":        (*API).describeBackups,
	"DescribeClusters":       (*API).describeClusters,
	"GetResourcePolicy":      (*API).getResourcePolicy,
	"InitializeCluster":      (*API).initializeCluster,
	"ListTags":               (*API).listTags,
	"ModifyBackupAttributes": (*API).modifyBackupAttributes,
	"ModifyCluster":          (*API).modifyCluster,
	"PutResourcePolicy":      (*API).putResourcePolicy,
	"RestoreBackup":          (*API).restoreBackup,
	"TagResource":            (*API).tagResource,
	"UntagResource":          (*API).untagResource,
}

// Operations returns the wire's routing table. Each handler checks the body
// against the model, then runs the operation.
func (a *API) Operations() awsjson.Operations {
	ops := awsjson.Operations{}
	for name, h := range a.routes {
		ops[name] = func(ctx context.Context, req *awsjson.Request) (any, error) {
			known, err := a.model.Validate(name, req.Body)
			if err != nil {
				return nil, wireError(name, err)
			}
			caller, ok := req.Caller.(*Caller)
			if !ok {
				return nil, fmt.Errorf("%s: request has no caller", name)
			}
			out, err := h(a, ctx, caller, input{body: req.Body, knownMembers: known})
			if err != nil {
				return nil, wireError(name, err)
			}
			return out, nil
		}
	}
	return ops
}

type tagIn struct {
	Key   string
	Value string
}

func tagsIn(in []tagIn) []cloudhsm.Tag {
	out := make([]cloudhsm.Tag, len(in))
	for i, t := range in {
		out[i] = cloudhsm.Tag{Key: t.Key, Value: t.Value}
	}
	return out
}
