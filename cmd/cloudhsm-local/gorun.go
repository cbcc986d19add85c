package main

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// `go run` builds the server into a temporary directory, starts it, and
// waits for it; but stopped with SIGTERM (as scripts stop a server with
// `kill $!`), the go command dies without passing the signal on, and the
// server it leaves behind keeps the port and the data directory.
// exitWithGoRun (one per platform) makes the server stop, as on SIGTERM,
// when the `go run` that started it ends. A server started any other way
// (a shell, a service manager, a test) outlives its parent as before.

// builtByGoRun reports whether exe, this process's executable, is where
// `go run` puts what it builds: $GOTMPDIR/go-build*/b001/exe/NAME.
func builtByGoRun(exe string) bool {
	dir := filepath.Dir(exe)
	if filepath.Base(dir) != "exe" {
		return false
	}
	for d := filepath.Dir(dir); d != filepath.Dir(d); d = filepath.Dir(d) {
		if strings.HasPrefix(filepath.Base(d), "go-build") {
			return true
		}
	}
	return false
}

// isGoCommand reports whether a process named name (its comm, or its
// executable's base name) is the go command.
func isGoCommand(name string) bool {
	name = strings.TrimSuffix(strings.TrimSpace(name), ".exe")
	return name == "go"
}

// watchParent calls stop once the parent of this process is no longer
// ppid (it ended, and this process was given to another), checking every
// interval, until the returned function is called.
func watchParent(ppid int, interval time.Duration, stop func()) (release func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if os.Getppid() != ppid {
					stop()
					return
				}
			}
		}
	}()
	return func() { close(done) }
}
