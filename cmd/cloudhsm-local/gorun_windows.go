package main

import (
	"os"
	"syscall"
)

// exitWithGoRun: `go run` is recognised by where it put this executable;
// Windows keeps a process's parent id after the parent ends, so the
// parent's handle is waited on instead, and stop called when it is
// signalled (the go command ended).
func exitWithGoRun(stop func()) (release func()) {
	exe, err := os.Executable()
	if err != nil || !builtByGoRun(exe) {
		return func() {}
	}
	h, err := syscall.OpenProcess(syscall.SYNCHRONIZE, false, uint32(os.Getppid()))
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer syscall.CloseHandle(h)
		if ev, err := syscall.WaitForSingleObject(h, syscall.INFINITE); err == nil && ev == syscall.WAIT_OBJECT_0 {
			select {
			case <-done:
			default:
				stop()
			}
		}
	}()
	return func() { close(done) }
}
