// Command dispatchflow-dev runs all of dispatchflow on one machine, for `make run`:
// an embedded Temporal server with its Web UI (file-backed SQLite in WAL mode under
// -data-dir, so messages survive a restart), the worker and the HTTP API with the
// sandbox ESP, in one process. With TEMPORAL_ADDRESS set it uses that cluster and
// starts no server. With DISPATCHFLOW_PAYLOAD_KEY set it also serves the codec
// server (127.0.0.1:8081, without keys: see codec.go) and points the UI at it.
// Ctrl-C stops everything.
package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/dispatchflow/dispatchflow/workflows"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/devserver"
)

func main() {
	dataDir := flag.String("data-dir", ".data", "directory of the embedded Temporal server's database")
	port := flag.Int("port", 7233, "gRPC port of the embedded Temporal server")
	uiPort := flag.Int("ui-port", 8233, "port of the Temporal Web UI (0: no UI)")
	serverOnly := flag.Bool("server-only", false, "run the Temporal server (and UI) only, no worker or API")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: dispatchflow-dev [flags]\n\nRuns Temporal (unless TEMPORAL_ADDRESS is set), the worker and the API.\n\nFlags:\n")
		flag.PrintDefaults()
		fmt.Fprintf(flag.CommandLine.Output(), "\nConfiguration (environment variables):\n")
		app.PrintConfigUsage(flag.CommandLine.Output())
	}
	flag.Parse()
	if err := run(*dataDir, *port, *uiPort, *serverOnly); err != nil {
		fmt.Fprintln(os.Stderr, "dispatchflow-dev:", err)
		os.Exit(1)
	}
}

func run(dataDir string, port, uiPort int, serverOnly bool) error {
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
		if codec, err = useDevCodec(&cfg, codecUIPort); err != nil {
			return err
		}
	}

	uiURL := "(the cluster's own UI)"
	if os.Getenv("TEMPORAL_ADDRESS") == "" {
		srv, err := devserver.Start(devserver.Options{
			DBFile:    filepath.Join(dataDir, "temporal.db"),
			Port:      port,
			UIPort:    uiPort,
			Namespace: cfg.Temporal.Namespace,
			// With a payload key, the UI decodes payloads through the codec server.
			UICodecEndpoint: codec.endpoint(),
			// Registered at every start (added when missing): the UI filters on them.
			SearchAttributes: workflows.SearchAttributeTypes(),
			Logger:           logger.With("component", "temporal-server"),
		})
		if err != nil {
			return fmt.Errorf("embedded Temporal server: %w", err)
		}
		defer srv.Stop()
		cfg.Temporal.Address = srv.FrontendHostPort()
		uiURL = srv.UIURL()
	}
	if serverOnly {
		logger.Info("Temporal is up", "temporal", cfg.Temporal.Address, "temporal_ui", uiURL)
		<-ctx.Done()
		return nil
	}
	c, err := app.Dial(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer c.Close()
	logger.Info("dispatchflow is up", "api", cfg.PublicURL, "temporal", cfg.Temporal.Address, "temporal_ui", uiURL,
		"esp", cfg.ESP, "default_postback_url", cfg.PostbackURL)
	if creds != nil {
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
	return app.Run(ctx, c, cfg, logger, app.Roles{API: true, Worker: true})
}
