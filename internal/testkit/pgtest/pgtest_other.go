//go:build !linux

package pgtest

import (
	"errors"
	"testing"

	"github.com/cloudhsm-local/cloudhsm-local/internal/testkit"
)

// Server is a private PostgreSQL server; on this system there is none.
type Server struct{}

const unsupported = "pgtest runs PostgreSQL on Linux only"

// FindBinaries reports that this system is not supported.
func FindBinaries() (string, error) { return "", errors.New(unsupported) }

// Start skips tb (fails it under CI=true).
func Start(tb testing.TB) *Server { testkit.MissingTool(tb, unsupported); return nil }

// Shared skips tb (fails it under CI=true).
func Shared(tb testing.TB) *Server { testkit.MissingTool(tb, unsupported); return nil }

// Main runs the tests of m.
func Main(m *testing.M) int { return m.Run() }

// Start does nothing.
func (s *Server) Start() error { return errors.New(unsupported) }

// Stop does nothing.
func (s *Server) Stop(immediate bool) {}

// Close does nothing.
func (s *Server) Close() {}

// Port is 0.
func (s *Server) Port() int { return 0 }

// URL is empty.
func (s *Server) URL(db string) string { return "" }

// NewDatabase skips tb.
func (s *Server) NewDatabase(tb testing.TB) string { testkit.MissingTool(tb, unsupported); return "" }

// Freeze does nothing.
func (s *Server) Freeze() {}

// Thaw does nothing.
func (s *Server) Thaw() {}
