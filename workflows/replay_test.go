package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplay replays histories recorded on a real server by the integration tests
// (devserver/integration, with DISPATCHFLOW_RECORD_HISTORY=1). A change to the
// workflow that would break messages already in flight fails here; guard such a
// change with workflow.GetVersion, and record a new history next to the old one.
func TestReplay(t *testing.T) {
	t.Parallel()
	for _, file := range []string{
		// Messages started before SearchVersion 1 (they upsert processed).
		"testdata/history_happy_path.json",
		"testdata/history_bounce.json",
		// SearchVersion 1: processed stays sent in visibility.
		"testdata/history_happy_path_v1.json",
		"testdata/history_bounce_v1.json",
		// The first run of a message that continued as new while its sent
		// postback waited to retry (devserver/integration TestContinueAsNewMidRetry).
		"testdata/history_continue_as_new.json",
	} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(Message, workflow.RegisterOptions{Name: MessageWorkflow})
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, file); err != nil {
				t.Fatalf("replaying %s: %v", file, err)
			}
		})
	}
}
