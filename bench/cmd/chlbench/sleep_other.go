//go:build !linux

package main

import "time"

// sleepUntil waits until t (see sleep_linux.go for why Linux does not use
// Go's timers).
func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }
