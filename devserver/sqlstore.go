package devserver

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	pgplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/tools/common/schema"
	sqltool "go.temporal.io/server/tools/sql"
)

// Postgres is a PostgreSQL server that holds the Temporal server's persistence
// and visibility, as Temporal is deployed in production: Start creates the two
// databases when missing and brings their schemas to the server's version with
// Temporal's own SQL tooling (what temporal-sql-tool's create-database,
// setup-schema and update-schema do), so a restart keeps every workflow and an
// upgrade of the server module migrates the schema.
type Postgres struct {
	// Addr is host:port; User and Password authenticate (the user may create
	// databases).
	Addr, User, Password string
	// Database and VisibilityDatabase default to "temporal" and
	// "temporal_visibility".
	Database, VisibilityDatabase string
	// MaxConns is each store's connection pool per service. Zero: 20.
	MaxConns int
}

// Schemas of Temporal's embedded schema directory, by store.
const (
	postgresSchema           = "postgresql/v12/temporal"
	postgresVisibilitySchema = "postgresql/v12/visibility"
)

// preparePostgres creates the databases and brings their schemas up to date,
// and returns the stores' configurations.
func preparePostgres(p *Postgres) (main, visibility *config.SQL, err error) {
	if p.Database == "" {
		p.Database = "temporal"
	}
	if p.VisibilityDatabase == "" {
		p.VisibilityDatabase = "temporal_visibility"
	}
	if p.MaxConns == 0 {
		p.MaxConns = 20
	}
	store := func(db string) *config.SQL {
		return &config.SQL{
			PluginName:      pgplugin.PluginName,
			ConnectProtocol: "tcp",
			ConnectAddr:     p.Addr,
			User:            p.User,
			Password:        p.Password,
			DatabaseName:    db,
			MaxConns:        p.MaxConns,
			MaxIdleConns:    p.MaxConns,
			MaxConnLifetime: time.Hour,
		}
	}
	main, visibility = store(p.Database), store(p.VisibilityDatabase)
	for _, s := range []struct {
		conf   *config.SQL
		schema string
	}{{main, postgresSchema}, {visibility, postgresVisibilitySchema}} {
		if err := setupSchema(*s.conf, s.schema); err != nil {
			return nil, nil, fmt.Errorf("devserver: PostgreSQL database %s: %w", s.conf.DatabaseName, err)
		}
	}
	return main, visibility, nil
}

// setupSchema creates the database when missing, sets up the schema's
// versioning on a new database, and updates the schema to the newest version
// the server module embeds (a no-op when it is current).
func setupSchema(conf config.SQL, schemaName string) error {
	logger := log.NewNoopLogger()
	create := conf // DoCreateDatabase changes its argument
	if err := sqltool.DoCreateDatabase(&create, "postgres", logger); err != nil && !strings.Contains(err.Error(), "already exists") {
		return fmt.Errorf("create database: %w", err)
	}
	conn, err := sqltool.NewConnection(&conf, logger)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ReadSchemaVersion(); err != nil {
		// A new database: version tables at 0.0, then every versioned step.
		setup := schema.NewSetupSchemaTask(conn, &schema.SetupConfig{InitialVersion: "0.0"}, logger)
		if err := setup.Run(); err != nil {
			return fmt.Errorf("setup schema: %w", err)
		}
	}
	update := schema.NewUpdateSchemaTask(conn, &schema.UpdateConfig{DBName: conf.DatabaseName, SchemaName: schemaName}, logger)
	if err := update.Run(); err != nil {
		return fmt.Errorf("update schema %s: %w", schemaName, err)
	}
	if v, err := conn.ReadSchemaVersion(); err != nil || v == "" || v == "0.0" {
		return errors.Join(fmt.Errorf("schema %s not set up (version %q)", schemaName, v), err)
	}
	return nil
}
