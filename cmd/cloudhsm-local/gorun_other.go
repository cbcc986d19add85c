//go:build !linux && !windows

package main

import (
	"os"
	"time"
)

// exitWithGoRun: without /proc, `go run` is recognised by where it put
// this executable; the parent is then watched, and stop called once this
// process has been given to another parent (the go command ended).
func exitWithGoRun(stop func()) (release func()) {
	ppid := os.Getppid()
	exe, err := os.Executable()
	if err != nil || ppid <= 1 || !builtByGoRun(exe) {
		return func() {}
	}
	return watchParent(ppid, 500*time.Millisecond, stop)
}
