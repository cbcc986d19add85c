//go:build unix

package pki

import "syscall"

// helperAttr puts the identity helper in a process group of its own, so
// that a terminal's Ctrl-C, sent to the server's group, reaches the server
// only: the server then stops the helper itself, without taking the
// helper's death for a failure.
func helperAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
