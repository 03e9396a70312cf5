package devserver_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/dispatchflow/dispatchflow/devserver"
	"github.com/dispatchflow/dispatchflow/devserver/postgres"
)

// StartPostgresForTest starts a private PostgreSQL server in a directory of the
// test's. The test fails (it does not skip) when PostgreSQL is not installed:
// .ci/run installs it, and a cluster left untested is not tested.
func startPostgresForTest(t *testing.T) *postgres.Server {
	t.Helper()
	dir := t.TempDir()
	// Run as root, the server runs as "postgres", who must reach its directory
	// (go test makes the test's temporary directories 0700).
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	pg, err := postgres.Start(t.Context(), postgres.Options{Dir: filepath.Join(dir, "pg"), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	return pg
}

// A server on PostgreSQL with several shards: the schema is made by Temporal's
// own tooling, the namespace registered, search attributes added and listed,
// and a restart on the same databases keeps the workflows (the schema update is
// then a no-op).
func TestPostgres(t *testing.T) {
	pg := startPostgresForTest(t)
	opts := devserver.Options{
		Postgres:         &devserver.Postgres{Addr: pg.Addr, User: postgres.User, Password: pg.Password},
		HistoryShards:    4,
		SearchAttributes: map[string]enumspb.IndexedValueType{"DispatchStatus": enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	}
	begin := time.Now()
	s := devserver.StartForTest(t, opts)
	t.Logf("PostgreSQL schema and server start: %v", time.Since(begin))
	c := dial(t, s)
	startWorker(t, c)
	ctx := testContext(t)

	// Workflows land on different shards; each runs.
	for _, id := range []string{"pg-1", "pg-2", "pg-3", "pg-4", "pg-5"} {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue, TypedSearchAttributes: statusAttr("queued")}, okWorkflow)
		if err != nil {
			t.Fatalf("start %s: %v", id, err)
		}
		var got string
		if err := run.Get(ctx, &got); err != nil || got != "ok" {
			t.Fatalf("%s = %q, %v", id, got, err)
		}
	}
	waitCount(t, c, `DispatchStatus = "queued"`, 5)

	// A restart on the same databases.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s = devserver.StartForTest(t, opts)
	c = dial(t, s)
	if _, err := c.DescribeWorkflowExecution(ctx, "pg-3", ""); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	waitCount(t, c, `DispatchStatus = "queued"`, 5)
}

func statusAttr(v string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(temporal.NewSearchAttributeKeyKeyword("DispatchStatus").ValueSet(v))
}

// waitCount waits until visibility counts want workflows matching query
// (visibility is eventually consistent).
func waitCount(t *testing.T, c client.Client, query string, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.CountWorkflow(t.Context(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		if err == nil && resp.GetCount() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("count %s = %d (%v), want %d", query, resp.GetCount(), err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
