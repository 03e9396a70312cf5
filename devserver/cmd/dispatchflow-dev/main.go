// Command dispatchflow-dev runs all of dispatchflow on one machine, for `make run`:
// an embedded Temporal server with its Web UI (file-backed SQLite in WAL mode under
// -data-dir, so messages survive a restart), the worker and the HTTP API with the
// sandbox ESP, in one process. With TEMPORAL_ADDRESS set it uses that cluster and
// starts no server. With DISPATCHFLOW_PAYLOAD_KEY set it also serves the codec
// server (127.0.0.1:8081, without keys: see codec.go) and points the UI at it.
//
// With -cluster (`make cluster`) it runs Temporal as deployed instead: a private
// PostgreSQL (Debian's) holding persistence and visibility, -shards history
// shards, and dispatchflow as deployed: -workers worker processes and -apis API
// processes on consecutive ports, each this binary with -role, restarted when
// they exit. Ctrl-C stops everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/devserver"
	"github.com/dispatchflow/dispatchflow/workflows"
)

func main() {
	dataDir := flag.String("data-dir", ".data", "directory of the embedded Temporal server's database")
	port := flag.Int("port", 7233, "gRPC port of the embedded Temporal server")
	uiPort := flag.Int("ui-port", 8233, "port of the Temporal Web UI (0: no UI)")
	serverOnly := flag.Bool("server-only", false, "run the Temporal server (and UI) only, no worker or API")
	role := flag.String("role", "", "run one role only, against TEMPORAL_ADDRESS: api or worker (how -cluster starts its processes)")
	var co clusterOptions
	cluster := flag.Bool("cluster", false, "Temporal on PostgreSQL with several shards, several worker and API processes (make cluster)")
	flag.IntVar(&co.pgPort, "pg-port", 15432, "with -cluster: PostgreSQL's port on 127.0.0.1")
	flag.IntVar(&co.shards, "shards", 16, "with -cluster: history shards (fixed when the database is created)")
	flag.IntVar(&co.workers, "workers", 2, "with -cluster: worker processes")
	flag.IntVar(&co.apis, "apis", 2, "with -cluster: API processes, on consecutive ports from DISPATCHFLOW_HTTP_ADDR's")
	flag.DurationVar(&co.restartAfter, "restart-after", 2*time.Second, "with -cluster: how long after a worker or API process exits it is started again")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: dispatchflow-dev [flags]\n\nRuns Temporal (unless TEMPORAL_ADDRESS is set), the worker and the API.\n\nFlags:\n")
		flag.PrintDefaults()
		fmt.Fprintf(flag.CommandLine.Output(), "\nConfiguration (environment variables):\n")
		app.PrintConfigUsage(flag.CommandLine.Output())
	}
	flag.Parse()
	co.dataDir = *dataDir
	if !*cluster {
		co = clusterOptions{}
	}
	if err := run(*dataDir, *port, *uiPort, *serverOnly, *role, co); err != nil {
		fmt.Fprintln(os.Stderr, "dispatchflow-dev:", err)
		os.Exit(1)
	}
}

func run(dataDir string, port, uiPort int, serverOnly bool, role string, co clusterOptions) error {
	roles := app.Roles{API: true, Worker: true}
	switch role {
	case "":
	case "api":
		roles = app.Roles{API: true}
	case "worker":
		roles = app.Roles{Worker: true}
	default:
		return fmt.Errorf("-role: %q is not api or worker", role)
	}
	cluster := co.dataDir != ""
	if role != "" && (os.Getenv("TEMPORAL_ADDRESS") == "" || cluster || serverOnly) {
		return errors.New("-role runs one process of a cluster: it needs TEMPORAL_ADDRESS, and neither -cluster nor -server-only")
	}
	if cluster {
		if os.Getenv("TEMPORAL_ADDRESS") != "" {
			return errors.New("-cluster starts its own Temporal: unset TEMPORAL_ADDRESS")
		}
		if co.shards < 1 || (!serverOnly && (co.workers < 1 || co.apis < 1)) {
			return errors.New("-cluster: -shards, -workers and -apis must be at least 1 (-server-only: no workers, no APIs)")
		}
		var err error
		if co.selfBin, err = os.Executable(); err != nil {
			return err
		}
	}
	cfg, err := config.Load()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if cfg.DevInbox && cfg.PostbackURL == "" && cfg.EndpointsFile == "" {
		cfg.PostbackURL = cfg.PublicURL + "/dev/inbox"
	}
	if len(cfg.AllowNetworks) == 0 {
		// On a developer's machine, postbacks go to local receivers (the dev inbox
		// among them): loopback is allowed unless DISPATCHFLOW_ALLOW_NETWORKS says otherwise.
		cfg.AllowNetworks = []string{"127.0.0.0/8", "::1/128"}
	}
	logger := app.NewLogger(cfg, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	var creds *devCredentials
	var suppressionKeyFile string
	var codec *devCodec
	embeddedUI := os.Getenv("TEMPORAL_ADDRESS") == "" && uiPort != 0
	if !serverOnly {
		if creds, err = useDevCredentials(&cfg, dataDir); err != nil {
			return fmt.Errorf("development credentials: %w", err)
		}
		if suppressionKeyFile, err = useDevSuppressionKey(&cfg, dataDir); err != nil {
			return fmt.Errorf("development suppression key: %w", err)
		}
		codecUIPort := 0 // with TEMPORAL_ADDRESS, the cluster's own UI, of an origin unknown here
		if embeddedUI {
			codecUIPort = uiPort
		}
		switch {
		case role != "":
			// A process of -cluster: the codec server, if any, is configured by
			// the cluster (on the first API process only).
		case cluster:
			if cfg.CodecAddr == "" && len(cfg.PayloadKeyList()) > 0 {
				// Not 8081: the second API process listens there.
				cfg.CodecAddr, _ = shiftPort(cfg.HTTPAddr, co.apis)
				cfg.CodecAddr, cfg.CodecAuth = "127.0.0.1:"+cfg.CodecAddr[strings.LastIndex(cfg.CodecAddr, ":")+1:], "off"
			}
			fallthrough
		default:
			if codec, err = useDevCodec(&cfg, codecUIPort); err != nil {
				return err
			}
			if codec != nil && cluster {
				codec.AuthOff = cfg.CodecAuth == "off"
			}
		}
	}

	uiURL := "(the cluster's own UI)"
	var apiURLs []string
	waitChildren := func() {}
	if os.Getenv("TEMPORAL_ADDRESS") == "" {
		opts := devserver.Options{
			DBFile:    filepath.Join(dataDir, "temporal.db"),
			Port:      port,
			UIPort:    uiPort,
			Namespace: cfg.Temporal.Namespace,
			// With a payload key, the UI decodes payloads through the codec server.
			UICodecEndpoint: codec.endpoint(),
			// Registered at every start (added when missing): the UI filters on them.
			SearchAttributes: workflows.SearchAttributeTypes(),
			Logger:           logger.With("component", "temporal-server"),
		}
		var srv *devserver.Server
		if cluster {
			var pg interface{ Stop() }
			if srv, pg, err = startPostgresTemporal(ctx, co, opts, logger); err != nil {
				return err
			}
			defer pg.Stop()
		} else if srv, err = devserver.Start(opts); err != nil {
			return fmt.Errorf("embedded Temporal server: %w", err)
		}
		defer srv.Stop()
		cfg.Temporal.Address = srv.FrontendHostPort()
		uiURL = srv.UIURL()
	}
	if serverOnly {
		logger.Info("Temporal is up", "temporal", cfg.Temporal.Address, "temporal_ui", uiURL, "history_shards", max(co.shards, 1))
		<-ctx.Done()
		return nil
	}
	if cluster {
		if apiURLs, waitChildren, err = runChildren(ctx, co, cfg, cfg.Temporal.Address, logger); err != nil {
			return err
		}
		// Stopped first: the deferred server and PostgreSQL stops run after.
		defer waitChildren()
		logger.Info("dispatchflow cluster is up", "api", strings.Join(apiURLs, " "), "workers", co.workers,
			"temporal", cfg.Temporal.Address, "temporal_ui", uiURL, "history_shards", co.shards, "esp", cfg.ESP)
	}
	var c client.Client
	if !cluster {
		if c, err = app.Dial(ctx, cfg, logger); err != nil {
			return err
		}
		defer c.Close()
		logger.Info("dispatchflow is up", "api", cfg.PublicURL, "temporal", cfg.Temporal.Address, "temporal_ui", uiURL,
			"esp", cfg.ESP, "default_postback_url", cfg.PostbackURL)
	}
	if creds != nil && role == "" {
		// Printed on purpose, on this machine only: make run's convenience.
		fmt.Fprintf(os.Stderr, "\n  Development API key (workspace default, every scope; kept in %s):\n\n    export KEY=%s\n\n"+
			"  Postbacks are signed (Standard Webhooks) with the workspace's signing secret:\n\n    %s\n\n"+
			"  Events posted to /v1/events/generic must be signed with its intake secret (kept in %s):\n\n    export DISPATCHFLOW_INTAKE_SECRET=%s\n\n"+
			"  Local development only: a deployment gets its keys from DISPATCHFLOW_API_KEYS_FILE (docs/security.md).\n\n",
			creds.KeyFile, creds.APIKey, creds.SigningSecret, creds.IntakeFile, creds.IntakeSecret)
	}
	if suppressionKeyFile != "" {
		fmt.Fprintf(os.Stderr, "  The suppression list (hard bounces, complaints, unsubscribes) is keyed with a development key,\n"+
			"  kept in %s: a deployment sets its own DISPATCHFLOW_SUPPRESSION_KEY, the same on the API and every worker.\n\n",
			suppressionKeyFile)
	}
	if codec != nil {
		if embeddedUI {
			fmt.Fprintf(os.Stderr, "  Payloads are encrypted (DISPATCHFLOW_PAYLOAD_KEY); the Temporal UI at %s shows them in clear\n"+
				"  through the codec server at %s (also the Temporal CLI's --codec-endpoint).\n\n", uiURL, codec.Endpoint)
		} else {
			fmt.Fprintf(os.Stderr, "  Payloads are encrypted (DISPATCHFLOW_PAYLOAD_KEY). The codec server at %s shows them in clear:\n"+
				"  make it your Temporal UI's codec endpoint (its origin in DISPATCHFLOW_CODEC_CORS_ORIGINS), or the\n"+
				"  Temporal CLI's --codec-endpoint.\n\n", codec.Endpoint)
		}
		if codec.AuthOff {
			fmt.Fprintf(os.Stderr, "  It decodes for anyone who reaches %s, without a key (DISPATCHFLOW_CODEC_AUTH=off, loopback only):\n"+
				"  local development only: a deployment sets DISPATCHFLOW_CODEC_ADDR and gives operators keys with the\n"+
				"  scope payloads:decode (docs/security.md).\n\n", cfg.CodecAddr)
		}
	}
	if cluster {
		fmt.Fprintf(os.Stderr, "  The cluster: Temporal on PostgreSQL (%d history shards), %d worker and %d API processes\n"+
			"  (API at %s; logs in %s). Kill any of them: it is started again.\n\n",
			co.shards, co.workers, co.apis, strings.Join(apiURLs, ", "), filepath.Join(dataDir, "cluster", "logs"))
		<-ctx.Done()
		return nil
	}
	return app.Run(ctx, c, cfg, logger, roles)
}
