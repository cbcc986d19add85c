package api

import (
	"maps"
	"strings"
	"testing"

	"github.com/cloudhsm-local/cloudhsm-local/internal/model"
)

func loadModel(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.Load()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The routing table and the service model name the same operations: every
// operation of the model has a handler, and every handler is an operation
// of the model (whose input the model can check).
func TestRoutesMatchModel(t *testing.T) {
	m := loadModel(t)
	for _, op := range m.Operations() {
		if routes[op] == nil {
			t.Errorf("operation %s of the model has no route", op)
		}
	}
	for op := range routes {
		if !m.HasOperation(op) {
			t.Errorf("route %s is not an operation of the model", op)
		}
	}
	if len(routes) != 18 {
		t.Errorf("%d routes, want the API's 18 operations", len(routes))
	}
	if err := checkRoutes(m, routes); err != nil {
		t.Errorf("checkRoutes: %v", err)
	}
}

// A routing table that disagrees with the model stops the API from being
// built, with an error naming each operation in question. (Served, a route
// missing from the model would answer every request with
// CloudHsmInternalFailureException, and a model operation without a route
// UnknownOperationException.)
func TestNewRefusesRoutesThatDisagreeWithTheModel(t *testing.T) {
	m := loadModel(t)
	tests := []struct {
		name string
		edit func(map[string]handlerFunc)
		want []string
	}{
		{"route missing", func(r map[string]handlerFunc) { delete(r, "DescribeBackups") },
			[]string{"operation DescribeBackups of the service model has no handler"}},
		{"route not in the model", func(r map[string]handlerFunc) { r["DescribeWidgets"] = (*API).describeClusters },
			[]string{"route DescribeWidgets is not an operation of the service model"}},
		{"route under a misspelt name", func(r map[string]handlerFunc) {
			r["Tagresource"] = r["TagResource"]
			delete(r, "TagResource")
		}, []string{"operation TagResource of the service model has no handler", "route Tagresource is not an operation"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			table := maps.Clone(routes)
			tc.edit(table)
			// The table is checked before the service is used: no service
			// needed, and a table let through would reach the nil service.
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("newAPI accepted the table and went on to use the service: %v", p)
				}
			}()
			a, err := newAPI(nil, m, table)
			if err == nil {
				t.Fatalf("newAPI accepted the table: %v", a)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
