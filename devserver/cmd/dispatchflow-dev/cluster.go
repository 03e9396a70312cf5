package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/devserver"
	"github.com/dispatchflow/dispatchflow/devserver/postgres"
)

// clusterOptions are the flags of -cluster: Temporal as deployed (PostgreSQL,
// several history shards) and dispatchflow as deployed (several worker and API
// processes).
type clusterOptions struct {
	pgPort           int
	shards           int
	workers, apis    int
	restartAfter     time.Duration
	dataDir, selfBin string
}

// startPostgresTemporal starts PostgreSQL (under dataDir/cluster/postgres) and
// a Temporal server on it. stop stops both.
func startPostgresTemporal(ctx context.Context, co clusterOptions, opts devserver.Options, logger *slog.Logger) (srv *devserver.Server, pg *postgres.Server, err error) {
	pg, err = postgres.Start(ctx, postgres.Options{Dir: filepath.Join(co.dataDir, "cluster", "postgres"), Port: co.pgPort})
	if err != nil {
		return nil, nil, err
	}
	logger.Info("PostgreSQL is up", "addr", pg.Addr, "data", filepath.Join(co.dataDir, "cluster", "postgres", "data"))
	opts.Postgres = &devserver.Postgres{Addr: pg.Addr, User: postgres.User, Password: pg.Password}
	opts.HistoryShards = int32(co.shards)
	srv, err = devserver.Start(opts)
	if err != nil {
		pg.Stop()
		return nil, nil, fmt.Errorf("Temporal server on PostgreSQL: %w", err)
	}
	return srv, pg, nil
}

// child is one worker or API process of the cluster, restarted when it exits
// on its own (a crash, a kill): as an init system would.
type child struct {
	name string
	args []string
	env  []string
	log  *slog.Logger

	mu  sync.Mutex
	cmd *exec.Cmd
}

// runChildren starts co.workers workers and co.apis API processes (this binary,
// with -role) and keeps them running until ctx is done, then stops them
// (SIGINT, then SIGKILL after 15 s). The API processes listen on consecutive
// ports from cfg's HTTP_ADDR (and INTAKE_ADDR); every process serves its metrics
// on consecutive ports from METRICS_ADDR. It returns the API base URLs at once
// and a function that waits for the children to have stopped.
func runChildren(ctx context.Context, co clusterOptions, cfg config.Config, temporal string, logger *slog.Logger) (apiURLs []string, wait func(), err error) {
	var children []*child
	metricsIndex := 0
	nextMetrics := func() string {
		if cfg.MetricsAddr == "" {
			return ""
		}
		addr, _ := shiftPort(cfg.MetricsAddr, metricsIndex)
		metricsIndex++
		return addr
	}
	base := []string{
		"TEMPORAL_ADDRESS=" + temporal,
		// Every process posts and points at the first API: the sandbox ESP's
		// events, the dev inbox.
		"DISPATCHFLOW_PUBLIC_URL=" + cfg.PublicURL,
	}
	if cfg.PostbackURL != "" {
		base = append(base, "DISPATCHFLOW_POSTBACK_URL="+cfg.PostbackURL)
	}
	for i := range co.apis {
		httpAddr, err := shiftPort(cfg.HTTPAddr, i)
		if err != nil {
			return nil, nil, fmt.Errorf("DISPATCHFLOW_HTTP_ADDR: %w", err)
		}
		env := append(slicesClone(base), "DISPATCHFLOW_HTTP_ADDR="+httpAddr, "DISPATCHFLOW_METRICS_ADDR="+nextMetrics())
		if cfg.IntakeAddr != "" {
			intake, err := shiftPort(cfg.IntakeAddr, i)
			if err != nil {
				return nil, nil, fmt.Errorf("DISPATCHFLOW_INTAKE_ADDR: %w", err)
			}
			env = append(env, "DISPATCHFLOW_INTAKE_ADDR="+intake)
		}
		if i == 0 && cfg.CodecAddr != "" { // one codec server, on the first API
			env = append(env, "DISPATCHFLOW_CODEC_ADDR="+cfg.CodecAddr, "DISPATCHFLOW_CODEC_AUTH="+cfg.CodecAuth,
				"DISPATCHFLOW_CODEC_CORS_ORIGINS="+strings.Join(cfg.CodecCORSOrigins, ","))
		} else {
			env = append(env, "DISPATCHFLOW_CODEC_ADDR=")
		}
		_, port, _ := net.SplitHostPort(httpAddr)
		apiURLs = append(apiURLs, "http://localhost:"+port)
		children = append(children, &child{name: fmt.Sprintf("api-%d", i+1), args: []string{"-role", "api"}, env: env})
	}
	for i := range co.workers {
		env := append(slicesClone(base), "DISPATCHFLOW_METRICS_ADDR="+nextMetrics(), "DISPATCHFLOW_CODEC_ADDR=")
		children = append(children, &child{name: fmt.Sprintf("worker-%d", i+1), args: []string{"-role", "worker"}, env: env})
	}
	logDir := filepath.Join(co.dataDir, "cluster", "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, nil, err
	}
	var wg sync.WaitGroup
	for _, c := range children {
		c.args = append(c.args, "-data-dir", co.dataDir)
		c.env = append(os.Environ(), c.env...)
		c.log = logger.With("process", c.name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.supervise(ctx, co.selfBin, filepath.Join(logDir, c.name+".log"), co.restartAfter)
		}()
	}
	return apiURLs, wg.Wait, nil
}

// supervise runs the child until ctx is done, starting it again restartAfter
// after it exits on its own.
func (c *child) supervise(ctx context.Context, bin, logPath string, restartAfter time.Duration) {
	for ctx.Err() == nil {
		started := time.Now()
		err := c.run(ctx, bin, logPath)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("exited; starting it again", "after", restartAfter, "ran", time.Since(started).Round(time.Millisecond), "exit", err, "log", logPath)
		select {
		case <-ctx.Done():
			return
		case <-time.After(restartAfter):
		}
	}
}

// run runs the child once, its output appended to logPath.
func (c *child) run(ctx context.Context, bin, logPath string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, bin, c.args...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 15 * time.Second
	// The children die with this process, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	c.log.Info("started", "pid", cmd.Process.Pid, "log", logPath)
	return cmd.Wait()
}

// shiftPort is host:port with port+n.
func shiftPort(addr string, n int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p == 0 {
		return "", fmt.Errorf("%q: a cluster needs a fixed port", addr)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+n)), nil
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }
