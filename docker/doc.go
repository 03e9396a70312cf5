// Package docker holds dispatchflow's container build (Dockerfile) and a complete
// local deployment (compose.yaml): PostgreSQL-backed Temporal and its Web UI, the
// API, scalable workers and Mailpit as the SMTP sink. No Docker engine runs where
// the tests run, so the package's test keeps the files honest instead: the compose
// file parses, sets only real configuration variables that the configuration
// accepts, pins every image, registers the workflow's search attributes, and the
// Dockerfile builds what `make build` builds.
package docker
