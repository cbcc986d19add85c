package snapshot

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docTables reads docs/snapshot-format.md and returns, for each "### "
// section, the rows of its first table, split into trimmed cells.
func docTables(t *testing.T) map[string][][]string {
	t.Helper()
	b, err := os.ReadFile("../../docs/snapshot-format.md")
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][][]string{}
	section, done := "", false
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#"):
			section, done = strings.TrimSpace(strings.TrimLeft(line, "#")), false
		case strings.HasPrefix(line, "|") && !done:
			cells := strings.Split(strings.Trim(line, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			if strings.HasPrefix(cells[0], "---") || cells[0] == "Field" || cells[0] == "Item" {
				continue
			}
			tables[section] = append(tables[section], cells)
		case line == "" && len(tables[section]) > 0:
			done = true
		}
	}
	return tables
}

var codeRe = regexp.MustCompile("`([^`]+)`")

// codes returns the `quoted` names of a cell.
func codes(cell string) []string {
	var out []string
	for _, m := range codeRe.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestDocumentedFieldsAreTheFormat: the table of each type of version 2 in
// docs/snapshot-format.md lists exactly its JSON fields, with a type, a
// meaning and a default, so that the documentation cannot drift from the
// format.
func TestDocumentedFieldsAreTheFormat(t *testing.T) {
	t.Parallel()
	tables := docTables(t)
	for section, typ := range map[string]reflect.Type{
		"Document": reflect.TypeFor[Document](), "Cluster": reflect.TypeFor[Cluster](),
		"Subnet": reflect.TypeFor[Subnet](), "Tag": reflect.TypeFor[Tag](),
		"Transition": reflect.TypeFor[Transition](), "HSM": reflect.TypeFor[Hsm](),
		"Identity": reflect.TypeFor[Identity](), "Backup": reflect.TypeFor[Backup](),
	} {
		var fields []string
		for _, f := range fieldsOf(typ) {
			fields = append(fields, f.name)
		}
		var documented []string
		for _, row := range tables[section] {
			names := codes(row[0])
			if len(names) != 1 || len(row) != 4 || row[1] == "" || row[2] == "" || row[3] == "" {
				t.Errorf("section %s: row %q is not | `field` | type | meaning | when absent |", section, row)
				continue
			}
			documented = append(documented, names[0])
		}
		for _, f := range fields {
			if !slices.Contains(documented, f) {
				t.Errorf("docs/snapshot-format.md, section %s: field %q of %s is not in the table", section, f, typ.Name())
			}
		}
		for _, d := range documented {
			if !slices.Contains(fields, d) {
				t.Errorf("docs/snapshot-format.md, section %s: %q is not a field of %s", section, d, typ.Name())
			}
		}
	}
}

// TestDocumentedLegacyNames: the table of versions 0 and 1 names every
// field of their frozen shapes, and only names of version 2 beside them.
func TestDocumentedLegacyNames(t *testing.T) {
	t.Parallel()
	rows := docTables(t)["Versions 0 and 1"]
	if len(rows) == 0 {
		t.Fatal("docs/snapshot-format.md has no table under \"Versions 0 and 1\"")
	}
	legacy, v2 := map[string][]string{}, v2Names()
	for _, row := range rows {
		legacy[row[0]] = append(legacy[row[0]], codes(row[1])...)
		for _, n := range codes(row[2]) {
			if !v2[n] {
				t.Errorf("the table of versions 0 and 1 maps to %q, not a field of version 2", n)
			}
		}
	}
	for item, typ := range map[string]reflect.Type{
		"document": reflect.TypeFor[legacyDocument](), "cluster": reflect.TypeFor[legacyCluster](),
		"subnet": reflect.TypeFor[legacySubnet](), "tag": reflect.TypeFor[legacyTag](),
		"transition": reflect.TypeFor[legacyTransition](), "HSM": reflect.TypeFor[legacyHsm](),
		"identity": reflect.TypeFor[legacyIdentity](), "backup": reflect.TypeFor[legacyBackup](),
	} {
		for _, f := range fieldsOf(typ) {
			names := []string{f.name}
			if f.typ == reflect.TypeFor[legacyTenant]() {
				names = []string{f.name + ".Account", f.name + ".Region"}
			}
			for _, n := range names {
				if !slices.Contains(legacy[item], n) {
					t.Errorf("the table of versions 0 and 1 does not map %s field %q", item, n)
				}
			}
		}
	}
}
