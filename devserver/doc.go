// Package devserver runs a complete Temporal server, and optionally the
// Temporal Web UI, inside the current process.
//
// It serves two purposes:
//
//   - local development: `make run` starts the whole product against a
//     file-backed SQLite database that survives restarts, with the Web UI
//     on :8233;
//   - integration tests: [StartForTest] starts a throw-away in-memory server
//     on a free port and stops it when the test ends.
//
// The server is go.temporal.io/server wired up the same way as the Temporal
// CLI's `temporal server start-dev`: all four services (frontend, history,
// matching, worker) in one process, one history shard, SQLite persistence
// and visibility, and static (non-gossip) membership on 127.0.0.1.
//
// This package lives in its own nested Go module,
// github.com/dispatchflow/dispatchflow/devserver, on purpose: the Temporal
// server drags in hundreds of dependencies (cloud SDKs, Kubernetes client,
// database drivers, the UI's assets). Keeping it out of the product module
// keeps those out of the product's dependency graph, so production workers
// never link the server; only development tooling and integration tests
// import this module.
package devserver
