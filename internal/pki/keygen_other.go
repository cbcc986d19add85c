//go:build !linux

package pki

// lowPriority does nothing where threads cannot be given their own priority.
func lowPriority() {}

// LowerPriority does nothing where threads cannot be given their own priority.
func LowerPriority() error { return nil }
