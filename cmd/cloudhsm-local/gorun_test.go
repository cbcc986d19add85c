package main

import (
	"path/filepath"
	"testing"
	"time"
)

func TestGoRunRecognised(t *testing.T) {
	for _, tc := range []struct {
		exe  string
		want bool
	}{
		{"/tmp/go-build3850238940/b001/exe/cloudhsm-local", true},
		{"/var/folders/x/T/go-build12/b001/exe/cloudhsm-local", true},
		{`C:\Users\me\AppData\Local\Temp\go-build1\b001\exe\cloudhsm-local.exe`, filepath.Separator == '\\'},
		{"/usr/local/bin/cloudhsm-local", false},
		{"/home/me/go/bin/cloudhsm-local", false},
		{"/opt/exe/cloudhsm-local", false},
	} {
		if got := builtByGoRun(tc.exe); got != tc.want {
			t.Errorf("builtByGoRun(%q) = %v", tc.exe, got)
		}
	}
	for name, want := range map[string]bool{"go\n": true, "go": true, "go.exe": true, "bash\n": false, "sh": false, "gopls": false, "systemd": false, "cloudhsm-local.test": false} {
		if got := isGoCommand(name); got != want {
			t.Errorf("isGoCommand(%q) = %v", name, got)
		}
	}
}

// The fallback (no prctl; other systems) stops once the parent changes.
func TestWatchParentStopsWhenTheParentChanges(t *testing.T) {
	stopped := make(chan struct{})
	release := watchParent(-1, time.Millisecond, func() { close(stopped) })
	defer release()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("watchParent did not call stop though the parent is not the one given")
	}
}
