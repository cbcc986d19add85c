package main

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// exitWithGoRun: when the parent is the go command, the kernel is asked to
// send this process SIGTERM when the parent ends (PR_SET_PDEATHSIG, a raw
// prctl: no cgo), which the server handles as any SIGTERM. If the parent
// ended before that, stop is called at once. Should prctl fail, the
// parent is watched instead.
func exitWithGoRun(stop func()) (release func()) {
	ppid := os.Getppid()
	if !parentIsGo(ppid) {
		return func() {}
	}
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return watchParent(ppid, 500*time.Millisecond, stop)
	}
	// The parent may have ended between Getppid and prctl: no signal then.
	if os.Getppid() != ppid {
		stop()
	}
	return func() {}
}

// parentIsGo reports whether process ppid is the go command, by its name
// or by its executable's.
func parentIsGo(ppid int) bool {
	proc := filepath.Join("/proc", strconv.Itoa(ppid))
	if comm, err := os.ReadFile(filepath.Join(proc, "comm")); err == nil && isGoCommand(string(comm)) {
		return true
	}
	exe, err := os.Readlink(filepath.Join(proc, "exe"))
	return err == nil && isGoCommand(filepath.Base(exe))
}
