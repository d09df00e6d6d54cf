package main

import (
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

const clockThreadCPUTime = 3 // CLOCK_THREAD_CPUTIME_ID

// cpuClock measures the CPU time of the calling goroutine's thread, which it
// locks, so that time spent descheduled on a busy machine is not counted.
type cpuClock struct{}

func newCPUClock() cpuClock { runtime.LockOSThread(); return cpuClock{} }

func (cpuClock) stop() { runtime.UnlockOSThread() }

func (cpuClock) now() time.Duration {
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return time.Duration(time.Now().UnixNano())
	}
	return time.Duration(ts.Nano())
}

const clockName = "thread CPU time"

// processCPU is the CPU time (user and system) of the whole process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
