package devserver

import "testing"

// StartForTest starts an in-memory server on a free port for the test t,
// registers t.Cleanup to stop it, and fails the test if it cannot start.
//
// opts.DBFile and opts.Port are ignored: test servers are always in-memory
// and never collide with each other or with a running dev server. The other
// options apply as in Start; leave opts zero for the defaults.
func StartForTest(t testing.TB, opts Options) *Server {
	t.Helper()
	opts.DBFile = ""
	opts.Port = 0
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("start Temporal dev server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop Temporal dev server: %v", err)
		}
	})
	return s
}
