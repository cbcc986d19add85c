//go:build !unix

package pki

import "syscall"

// helperAttr has nothing to set where there are no process groups.
func helperAttr() *syscall.SysProcAttr { return nil }
