//go:build !linux

package main

import "time"

// cpuClock falls back to the wall clock.
type cpuClock struct{}

func newCPUClock() cpuClock { return cpuClock{} }

func (cpuClock) stop() {}

var epoch = time.Now()

func (cpuClock) now() time.Duration { return time.Since(epoch) }

const clockName = "wall clock"

// processCPU is unknown here.
func processCPU() time.Duration { return 0 }
