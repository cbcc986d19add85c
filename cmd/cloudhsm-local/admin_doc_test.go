package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestAdminCommandsDocumented: every `cloudhsm-local admin` command is in
// the command list of docs/admin-api.md and in the README's, so that a new
// command cannot be left out of either.
func TestAdminCommandsDocumented(t *testing.T) {
	t.Parallel()
	apiDoc := section(t, "../../docs/admin-api.md", "## The admin command", "## ")
	readme := section(t, "../../README.md", "The `cloudhsm-local admin` commands are", "\n\n")
	for _, c := range adminCommands() {
		// A line of the list starts with the command, or names it after
		// another (freeze | resume).
		listed := regexp.MustCompile(`(?m)^  (?:[a-z-]+ \| )*` + regexp.QuoteMeta(c.name) + `(?:\s|$)`)
		if !listed.MatchString(apiDoc) {
			t.Errorf("docs/admin-api.md's command list lacks %q", c.name)
		}
		if !strings.Contains(readme, "`"+c.name+"`") {
			t.Errorf("the README's list of admin commands lacks %q", c.name)
		}
	}
}

// section returns the text of a file from the line that starts with start
// to the next end after it.
func section(t *testing.T, path, start, end string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(b), start)
	if !ok {
		t.Fatalf("%s has no %q", path, start)
	}
	text, _, _ := strings.Cut(after, end)
	return text
}
