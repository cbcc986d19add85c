package pki

import (
	"runtime"
	"syscall"
)

// lowPriority locks the calling goroutine to its OS thread and gives that
// thread the lowest scheduling priority (nice 19), so the kernel runs every
// other thread of the server first. The goroutine must end without
// unlocking: the Go runtime then discards the thread instead of reusing it
// for other goroutines at low priority.
func lowPriority() {
	runtime.LockOSThread()
	// On Linux, PRIO_PROCESS with a thread id sets that thread's nice value.
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19)
}
