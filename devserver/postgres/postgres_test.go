package postgres

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A server that cannot start (its port taken) is an error that quotes its log,
// not a hang; the data directory it made is reused by the next start.
func TestStartFailsWithTheLog(t *testing.T) {
	if _, err := FindBinDir(); err != nil {
		t.Fatal(err) // .ci/run installs Debian's postgresql: never skipped
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // reachable by "postgres" when run as root
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = Start(t.Context(), Options{Dir: filepath.Join(dir, "pg"), Port: port})
	if err == nil || !strings.Contains(err.Error(), "postgres.log") {
		t.Fatalf("Start on a taken port = %v, want an error quoting postgres.log", err)
	}
	l.Close()
	s, err := Start(t.Context(), Options{Dir: filepath.Join(dir, "pg"), Port: port})
	if err != nil {
		t.Fatalf("second start on the same directory: %v", err)
	}
	s.Stop()
	select {
	case <-s.Done():
	default:
		t.Fatal("Stop returned before the server exited")
	}
}

func TestStartNeedsDirAndPort(t *testing.T) {
	if _, err := Start(t.Context(), Options{Port: 1}); err == nil {
		t.Error("Start without Dir: nil error")
	}
	if _, err := Start(t.Context(), Options{Dir: t.TempDir()}); err == nil {
		t.Error("Start without Port: nil error")
	}
}
