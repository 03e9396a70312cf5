package devserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/authorization"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	defaultIP        = "127.0.0.1"
	defaultNamespace = "default"
	clusterName      = "active"
	// readyTimeout bounds how long Start waits for the frontend to serve the
	// namespace (and for the UI to listen).
	readyTimeout = 30 * time.Second
)

// Options configures a Server. The zero value is a working in-memory server
// on a free port of 127.0.0.1 with namespace "default" and no UI.
type Options struct {
	// DBFile is the SQLite database file. Empty (the default) means an
	// in-memory database, lost at Stop.
	//
	// A file-backed database is opened in WAL mode with synchronous=NORMAL,
	// which is about 3x faster than the default rollback journal and still
	// crash-safe (a power loss may drop the last commits, never corrupt the
	// file). The schema is created when the file does not exist yet and the
	// namespace is created when missing, so a restart keeps all workflows.
	// The parent directory must exist.
	DBFile string

	// Postgres, when set, holds persistence and visibility instead of SQLite
	// (DBFile is then ignored): Temporal as it is deployed, for `make cluster`.
	// The namespace is registered when missing, with a retention of 72h.
	Postgres *Postgres

	// HistoryShards is the number of history shards: the unit of Temporal's
	// write concurrency. Zero: 1 with SQLite (which serialises writers
	// anyway), 16 with PostgreSQL. It is fixed when the database is created:
	// a different number on a restart is refused by the server.
	HistoryShards int32

	// IP to bind the frontend gRPC endpoint and the UI to. Defaults to
	// 127.0.0.1. The internal history, matching and worker services always
	// bind to 127.0.0.1.
	IP string

	// Port of the frontend gRPC endpoint. Defaults to 0, which picks a free
	// port (see FrontendHostPort).
	Port int

	// UIPort of the Temporal Web UI. Defaults to 0, which means no UI.
	UIPort int

	// UICodecEndpoint, when set, is the codec server the Web UI decodes payloads
	// with (its codec.endpoint, e.g. "http://127.0.0.1:8081/codec"): the
	// browser posts to {UICodecEndpoint}/decode and /encode, without credentials
	// (a codec server on loopback, without authentication).
	UICodecEndpoint string

	// Namespace to create. Defaults to "default". It is created with a
	// workflow retention of 24h (the only retention the SQLite bootstrap
	// supports; change it afterwards with UpdateNamespace if needed).
	Namespace string

	// SearchAttributes are custom search attributes registered on the
	// namespace (name -> type). Defaults to none. On a restart with an
	// existing database, attributes that are not registered yet are added;
	// existing ones are never removed.
	SearchAttributes map[string]enumspb.IndexedValueType

	// TLS, when set, serves the frontend over TLS (mTLS with ClientCAFile): for
	// tests of clients that connect to a secured cluster. Nil: plaintext. The UI
	// is not started with TLS.
	TLS *TLS

	// Logger receives the server's warnings and errors; the server's
	// informational messages are always dropped because it is very chatty.
	// Defaults to nil, which discards all server logs.
	Logger *slog.Logger
}

// TLS is the frontend's TLS: PEM files. The server's own system worker and
// Start's readiness check connect with ClientCertFile and ClientKeyFile.
type TLS struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, makes client certificates signed by it required.
	ClientCAFile string
	// ServerCAFile verifies CertFile; ServerName is the name it was issued for.
	ServerCAFile, ServerName string
	// ClientCertFile and ClientKeyFile are a client certificate of ClientCAFile.
	ClientCertFile, ClientKeyFile string
}

// Server is a running in-process Temporal server. Create it with Start and
// release it with Stop.
type Server struct {
	server    temporal.Server
	logsMuted *atomic.Bool
	ui        *uiServer
	hostPort  string
	uiURL     string
	namespace string

	// clientTLS is how Start's own client reaches a TLS frontend.
	clientTLS *tls.Config

	stopOnce sync.Once
	stopErr  error
}

// Start starts a Temporal server (and the Web UI when opts.UIPort is set). It
// returns once the frontend accepts connections and the namespace can be
// used.
func Start(opts Options) (*Server, error) {
	if opts.IP == "" {
		opts.IP = defaultIP
	}
	if opts.Namespace == "" {
		opts.Namespace = defaultNamespace
	}
	ip := net.ParseIP(opts.IP)
	if ip == nil {
		return nil, fmt.Errorf("devserver: invalid IP %q", opts.IP)
	}
	// Address clients use to reach the frontend: a wildcard bind address is
	// reachable via loopback.
	dialIP := opts.IP
	if ip.IsUnspecified() {
		dialIP = defaultIP
	}

	var sqlConf, visibilityConf *config.SQL
	var err error
	if opts.Postgres != nil {
		sqlConf, visibilityConf, err = preparePostgres(opts.Postgres)
		if opts.HistoryShards == 0 {
			opts.HistoryShards = 16
		}
	} else {
		sqlConf, err = prepareDatabase(opts)
		visibilityConf = sqlConf
	}
	if err != nil {
		return nil, err
	}
	if opts.HistoryShards == 0 {
		opts.HistoryShards = 1
	}

	ports, err := reservePorts(opts.IP, opts.Port)
	if err != nil {
		return nil, err
	}
	opts.Port = ports.frontend
	hostPort := net.JoinHostPort(dialIP, strconv.Itoa(opts.Port))
	conf := serverConfig(opts, sqlConf, visibilityConf, dialIP, ports)

	logsMuted := new(atomic.Bool)
	logger := newServerLogger(opts.Logger, logsMuted)
	authorizer, err := authorization.GetAuthorizerFromConfig(&conf.Global.Authorization)
	if err != nil {
		return nil, fmt.Errorf("devserver: create authorizer: %w", err)
	}
	claimMapper, err := authorization.GetClaimMapperFromConfig(&conf.Global.Authorization, logger)
	if err != nil {
		return nil, fmt.Errorf("devserver: create claim mapper: %w", err)
	}
	hosts := map[primitives.ServiceName]static.Hosts{
		primitives.FrontendService: static.SingleLocalHost(hostPort),
		primitives.HistoryService:  static.SingleLocalHost(net.JoinHostPort(defaultIP, strconv.Itoa(ports.history))),
		primitives.MatchingService: static.SingleLocalHost(net.JoinHostPort(defaultIP, strconv.Itoa(ports.matching))),
		primitives.WorkerService:   static.SingleLocalHost(net.JoinHostPort(defaultIP, strconv.Itoa(ports.worker))),
	}
	srv, err := temporal.NewServer(
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(logger),
		temporal.WithAuthorizer(authorizer),
		temporal.WithClaimMapper(func(*config.Config) authorization.ClaimMapper { return claimMapper }),
		temporal.WithDynamicConfigClient(dynamicConfig()),
	)
	if err != nil {
		return nil, fmt.Errorf("devserver: create server: %w", err)
	}
	if err := srv.Start(); err != nil {
		_ = srv.Stop()
		return nil, fmt.Errorf("devserver: start server: %w", err)
	}

	s := &Server{server: srv, logsMuted: logsMuted, hostPort: hostPort, namespace: opts.Namespace}
	if opts.TLS != nil {
		if s.clientTLS, err = opts.TLS.clientConfig(); err != nil {
			_ = s.Stop()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.waitReady(ctx, opts.SearchAttributes, opts.Postgres != nil); err != nil {
		_ = s.Stop()
		return nil, err
	}
	if opts.UIPort != 0 && opts.TLS == nil {
		s.ui, err = startUI(ctx, opts.IP, opts.UIPort, hostPort, opts.Namespace, opts.UICodecEndpoint)
		if err != nil {
			_ = s.Stop()
			return nil, err
		}
		s.uiURL = "http://" + net.JoinHostPort(dialIP, strconv.Itoa(opts.UIPort))
	}
	return s, nil
}

// FrontendHostPort returns the host:port of the frontend gRPC endpoint, e.g.
// "127.0.0.1:7233", suitable for client.Options.HostPort.
func (s *Server) FrontendHostPort() string { return s.hostPort }

// UIURL returns the base URL of the Web UI, e.g. "http://127.0.0.1:8233", or
// "" when the UI is not running.
func (s *Server) UIURL() string { return s.uiURL }

// Namespace returns the namespace created by Start.
func (s *Server) Namespace() string { return s.namespace }

// Stop stops the UI and the server and releases their ports. It is safe to
// call more than once; later calls return the first call's result. Server
// logs are discarded from the moment Stop is called: shutting down makes
// every service log spurious "context canceled" errors.
//
// The server's SQLite plugin never closes its database connections, so a
// database file stays open (and an in-memory database stays allocated,
// though unreachable) until the process exits. Starting again on the same
// file in the same process reuses that connection.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.logsMuted.Store(true)
		var errs []error
		if s.ui != nil {
			errs = append(errs, s.ui.stop())
		}
		if err := s.server.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("devserver: stop server: %w", err))
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// prepareDatabase returns the SQLite configuration for opts.DBFile, creating
// the schema (for a new file) and the namespace (when missing).
func prepareDatabase(opts Options) (*config.SQL, error) {
	conf := &config.SQL{PluginName: sqliteplugin.PluginName}
	if opts.DBFile == "" {
		// The plugin keeps one shared connection per DSN for the life of the
		// process, so every in-memory server needs a database name of its own.
		// The plugin creates the schema for in-memory databases itself.
		conf.DatabaseName = fmt.Sprintf("devserver-%d-%x", os.Getpid(), rand.Uint64())
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
	} else {
		path, err := filepath.Abs(opts.DBFile)
		if err != nil {
			return nil, fmt.Errorf("devserver: database file %q: %w", opts.DBFile, err)
		}
		// The name is pasted into a "file:" URI unescaped.
		if strings.ContainsAny(path, "?#") {
			return nil, fmt.Errorf("devserver: database file %q: path must not contain '?' or '#'", path)
		}
		conf.DatabaseName = path
		conf.ConnectAttributes = map[string]string{
			"mode":         "rwc",
			"journal_mode": "wal",
			"synchronous":  "NORMAL",
			// Wait instead of failing when another process (sqlite3 shell,
			// a test) holds the lock for a moment.
			"busy_timeout": "5000",
		}
		// MaxConns stays at the plugin's default of 1 even though the plugin
		// honours more with WAL: SQLite serializes writers anyway, and with
		// several connections Temporal's read-then-write transactions fail
		// with "database is locked (517)" (SQLITE_BUSY_SNAPSHOT, which
		// busy_timeout cannot wait out). Measured with 200 concurrent
		// workflows: 1 connection 7-9s and no errors, 4 connections 15s and
		// ~200 logged errors; the rollback journal with 1 connection 27s.
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(filepath.Dir(path)); err != nil {
				return nil, fmt.Errorf("devserver: database directory: %w", err)
			}
			if err := sqliteschema.SetupSchema(conf); err != nil {
				return nil, fmt.Errorf("devserver: create schema in %s: %w", path, err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("devserver: database file: %w", err)
		}
	}

	ns, err := sqliteschema.NewNamespaceConfig(clusterName, opts.Namespace, false, opts.SearchAttributes)
	if err != nil {
		return nil, fmt.Errorf("devserver: namespace %q: %w", opts.Namespace, err)
	}
	if err := sqliteschema.CreateNamespaces(conf, ns); err != nil {
		return nil, fmt.Errorf("devserver: create namespace %q: %w", opts.Namespace, err)
	}
	return conf, nil
}

// serverConfig builds the static server configuration. The frontend listens
// on opts.IP and is reached via dialIP.
func serverConfig(opts Options, sqlConf, visibilityConf *config.SQL, dialIP string, ports servicePorts) *config.Config {
	hostPort := net.JoinHostPort(dialIP, strconv.Itoa(opts.Port))
	const store, visibilityStore = "default", "visibility"
	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = defaultIP
	conf.Persistence.DefaultStore = store
	conf.Persistence.VisibilityStore = visibilityStore
	// Must never change for an existing database.
	conf.Persistence.NumHistoryShards = opts.HistoryShards
	conf.Persistence.DataStores = map[string]config.DataStore{store: {SQL: sqlConf}, visibilityStore: {SQL: visibilityConf}}
	if visibilityConf == sqlConf { // SQLite: one database, one store
		conf.Persistence.VisibilityStore = store
		delete(conf.Persistence.DataStores, visibilityStore)
	}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             hostPort,
				HTTPAddress:            net.JoinHostPort(dialIP, strconv.Itoa(ports.frontendHTTP)),
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	internal := func(port int) config.Service {
		return config.Service{RPC: config.RPC{GRPCPort: port, BindOnIP: defaultIP}}
	}
	conf.Services = map[string]config.Service{
		string(primitives.FrontendService): {RPC: config.RPC{GRPCPort: ports.frontend, HTTPPort: ports.frontendHTTP, BindOnIP: opts.IP}},
		string(primitives.HistoryService):  internal(ports.history),
		string(primitives.MatchingService): internal(ports.matching),
		string(primitives.WorkerService):   internal(ports.worker),
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = hostPort
	if t := opts.TLS; t != nil {
		conf.Global.TLS.Frontend.Server = config.ServerTLS{CertFile: t.CertFile, KeyFile: t.KeyFile}
		if t.ClientCAFile != "" {
			conf.Global.TLS.Frontend.Server.ClientCAFiles = []string{t.ClientCAFile}
			conf.Global.TLS.Frontend.Server.RequireClientAuth = true
		}
		ct := config.ClientTLS{ServerName: t.ServerName, RootCAFiles: []string{t.ServerCAFile}}
		conf.Global.TLS.Frontend.Client = ct
		conf.Global.TLS.SystemWorker = config.WorkerTLS{CertFile: t.ClientCertFile, KeyFile: t.ClientKeyFile, Client: ct}
	}
	return &conf
}

// clientConfig is the TLS of a client of the frontend: its CA, its name, and the
// client certificate when there is one.
func (t *TLS) clientConfig() (*tls.Config, error) {
	pem, err := os.ReadFile(t.ServerCAFile)
	if err != nil {
		return nil, fmt.Errorf("devserver: TLS server CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("devserver: TLS server CA %s: no certificate", t.ServerCAFile)
	}
	c := &tls.Config{RootCAs: pool, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.ClientCertFile, t.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("devserver: TLS client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// namespaceCacheRefresh is how often each service reloads namespaces (the
// server's default is 10 s): a namespace registered at start is usable soon.
const namespaceCacheRefresh = time.Second

// dynamicConfig mirrors the settings of the Temporal CLI's dev server.
func dynamicConfig() dynamicconfig.StaticClient {
	return dynamicconfig.StaticClient{
		dynamicconfig.NamespaceCacheRefreshInterval.Key(): namespaceCacheRefresh,
		// No phoning home.
		dynamicconfig.EnableServerVersionCheck.Key(): false,
		// New search attributes are visible immediately.
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key(): true,
		// Generous rate limits: a single developer or a test must never be
		// throttled by the server.
		dynamicconfig.FrontendPersistenceMaxQPS.Key():                    10000,
		dynamicconfig.HistoryPersistenceMaxQPS.Key():                     10000,
		dynamicconfig.MatchingPersistenceMaxQPS.Key():                    10000,
		dynamicconfig.WorkerPersistenceMaxQPS.Key():                      10000,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		// One partition per task queue: a single node with one worker per queue
		// gains nothing from the default four, and pays for forwarding tasks and
		// polls between them (measured in docs/benchmarks.md).
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():  1,
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key(): 1,
		// The default cache (128k executions) is sized for production hosts.
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key(): 8192,
		// A workflow task that schedules an activity gets it back in the same
		// round trip (the worker asks for it): the hand-over to the ESP starts
		// without a poll. The Temporal CLI's dev server enables it too.
		dynamicconfig.EnableActivityEagerExecution.Key(): true,
		// The server (v1.32.1) never stops the SDK workers of these system
		// jobs, so they would keep polling a dead frontend after Stop, and
		// could even poll the next server started on the same port. A dev
		// server needs none of them: the scanners only garbage-collect old
		// task queues and history branches, and without the parent-close-
		// policy worker the history service applies the policy inline.
		dynamicconfig.TaskQueueScannerEnabled.Key():       false,
		dynamicconfig.HistoryScannerEnabled.Key():         false,
		dynamicconfig.EnableParentClosePolicyWorker.Key(): false,
	}
}

// waitReady waits until the namespace is served by the frontend, then
// registers the search attributes that the namespace does not have yet.
//
// With register, a namespace that does not exist is registered (SQLite's is
// written into the database before the server starts; PostgreSQL's is not).
func (s *Server) waitReady(ctx context.Context, attrs map[string]enumspb.IndexedValueType, register bool) error {
	registered := false
	c, err := client.DialContext(ctx, client.Options{
		HostPort:          s.hostPort,
		Namespace:         s.namespace,
		Logger:            sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler)),
		ConnectionOptions: client.ConnectionOptions{TLS: s.clientTLS},
	})
	if err != nil {
		return fmt.Errorf("devserver: connect to frontend %s: %w", s.hostPort, err)
	}
	defer c.Close()

	for {
		_, err = c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: s.namespace})
		if err == nil {
			break
		}
		var notFound *serviceerror.NamespaceNotFound
		if register && errors.As(err, &notFound) {
			registered = true
			_, err = c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
				Namespace:                        s.namespace,
				WorkflowExecutionRetentionPeriod: durationpb.New(72 * time.Hour),
			})
			var exists *serviceerror.NamespaceAlreadyExists
			if err != nil && !errors.As(err, &exists) {
				return fmt.Errorf("devserver: register namespace %q: %w", s.namespace, err)
			}
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devserver: namespace %q not ready: %w", s.namespace, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if registered {
		// A namespace just registered reaches each service's namespace cache
		// within its refresh interval (namespaceCacheRefresh); until then, starts
		// fail with NamespaceNotFound.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2*namespaceCacheRefresh + 500*time.Millisecond):
		}
	}
	if len(attrs) == 0 {
		return nil
	}

	// A namespace just registered reaches the frontend's namespace cache within
	// its refresh interval (10 s).
	var resp *operatorservice.ListSearchAttributesResponse
	for {
		resp, err = c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: s.namespace})
		var notFound *serviceerror.NamespaceNotFound
		if err == nil || !errors.As(err, &notFound) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("devserver: list search attributes: %w", err)
	}
	missing := make(map[string]enumspb.IndexedValueType)
	for name, want := range attrs {
		got, ok := resp.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = want
		case got != want:
			return fmt.Errorf("devserver: search attribute %q is registered as %v, not %v", name, got, want)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        s.namespace,
		SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("devserver: add search attributes: %w", err)
	}
	return nil
}

// servicePorts are the TCP ports of the server's services.
type servicePorts struct {
	frontend, frontendHTTP    int // on the frontend's IP
	history, matching, worker int // gRPC, on 127.0.0.1
}

// reservePorts picks free ports for all services; frontend is used as is
// when not 0. The frontend's HTTP API is enabled because the server warns at
// every start without it (Nexus needs it).
//
// The ports are checked by binding them, all at the same time so that none is
// picked twice, and released just before the server binds them again. A
// fixed frontend port is checked too: the server handles a failed listen by
// calling logger.Fatal, which would either exit the process or, with our
// logger, leave it half-started.
func reservePorts(ip string, frontend int) (servicePorts, error) {
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	var err error // the first error; later takes are skipped
	take := func(ip string, port int) int {
		if err != nil {
			return 0
		}
		l, lerr := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
		if lerr != nil {
			err = fmt.Errorf("devserver: reserve port: %w", lerr)
			return 0
		}
		listeners = append(listeners, l)
		return l.Addr().(*net.TCPAddr).Port
	}
	p := servicePorts{
		frontend:     take(ip, frontend),
		frontendHTTP: take(ip, 0),
		history:      take(defaultIP, 0),
		matching:     take(defaultIP, 0),
		worker:       take(defaultIP, 0),
	}
	return p, err
}
