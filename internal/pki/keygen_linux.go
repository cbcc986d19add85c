package pki

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
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

// schedIdle is Linux's SCHED_IDLE scheduling policy.
const schedIdle = 5

// LowerPriority gives every thread of this process the lowest scheduling
// priority: nice 19 and the SCHED_IDLE policy. On Linux both belong to a
// thread, and a new thread takes its creator's, so once every existing
// thread is lowered all later ones are too; the list is walked twice in
// case the runtime started a thread meanwhile. For the identity helper
// process (see ServeIdentities).
func LowerPriority() error {
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("lower priority: %w", err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, 19); err != nil && err != syscall.ESRCH {
				return fmt.Errorf("lower priority of thread %d: %w", tid, err)
			}
			// SCHED_IDLE: run only on a CPU nothing else wants, and give it
			// up at once when another thread wakes (nice 19 alone still
			// runs out its time slice first). Not fatal if refused.
			var param [1]int32
			_, _, _ = syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid), schedIdle, uintptr(unsafe.Pointer(&param[0])))
		}
	}
	return nil
}
