package bench

import (
	"context"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// historyCost reads the histories of ids back from Temporal: events and workflow
// tasks per message (the messages are still open, waiting on their tracking windows).
func historyCost(ctx context.Context, c client.Client, ids []string) (events, tasks float64, err error) {
	for _, id := range ids {
		it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return 0, 0, err
			}
			events++
			if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
				tasks++
			}
		}
	}
	return events / float64(len(ids)), tasks / float64(len(ids)), nil
}

// Empty is the server-ceiling workflow: started and completed, nothing else.
func Empty(workflow.Context) error { return nil }

// measureCeiling runs n Empty workflows, started eagerly, concurrency at a time,
// with a worker of its own: the server's ceiling in workflows per second.
func measureCeiling(ctx context.Context, c client.Client, n, concurrency int) (float64, error) {
	const queue = "bench-empty"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflow(Empty)
	if err := w.Start(); err != nil {
		return 0, err
	}
	defer w.Stop()
	start := time.Now()
	err := parallel(n, concurrency, func(int) error {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue, EnableEagerStart: true}, Empty)
		if err == nil {
			err = run.Get(ctx, nil)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// Upserts is the upsert-cost workflow: three workflow tasks (each after a 1 ms
// timer, as the Message workflow's status changes each come in a task of their
// own), each upserting DispatchStatus when upsert is set. Run with and without,
// the difference is the server's cost of the upserts alone.
func Upserts(ctx workflow.Context, upsert bool) error {
	status := temporal.NewSearchAttributeKeyKeyword("DispatchStatus")
	for _, s := range []string{"sent", "processed", "delivered"} {
		if err := workflow.Sleep(ctx, time.Millisecond); err != nil {
			return err
		}
		if upsert {
			if err := workflow.UpsertTypedSearchAttributes(ctx, status.ValueSet(s)); err != nil {
				return err
			}
		}
	}
	return nil
}

// upsertsPerRun is how many upserts an Upserts run with upsert makes.
const upsertsPerRun = 3

// measureUpserts runs n Upserts workflows without upserts, then n with, c at a
// time, and returns the CPU that cpu() counts per upsert (the difference
// between the two, per upsert) and the CPU per workflow without.
func measureUpserts(ctx context.Context, c client.Client, n, concurrency int, cpu func() time.Duration) (perUpsert, base time.Duration, err error) {
	const queue = "bench-upserts"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflow(Upserts)
	if err := w.Start(); err != nil {
		return 0, 0, err
	}
	defer w.Stop()
	var spent [2]time.Duration
	for i, upsert := range []bool{false, true} {
		c0 := cpu()
		err := parallel(n, concurrency, func(int) error {
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: queue}, Upserts, upsert)
			if err == nil {
				err = run.Get(ctx, nil)
			}
			return err
		})
		if err != nil {
			return 0, 0, err
		}
		spent[i] = cpu() - c0
	}
	return (spent[1] - spent[0]) / time.Duration(n*upsertsPerRun), spent[0] / time.Duration(n), nil
}
