// Package postgres runs a private PostgreSQL server for `make cluster`, the
// cluster tests and the cluster benchmarks: Debian's own binaries, a data
// directory of our own, a port of our own on 127.0.0.1 only, password
// authentication (SCRAM) with a password made at initdb and kept beside the
// data directory, readable by its owner only. The server is a child process of
// ours: Stop ends it (fast shutdown), and so does our death (Linux's
// parent-death signal), so no stray postmaster outlives a killed test.
package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// User is the superuser initdb creates; Temporal connects as it.
const User = "temporal"

// Options configures Start.
type Options struct {
	// Dir holds the server's files: Dir/data (the data directory, made by initdb
	// on the first start), Dir/password and Dir/postgres.log. Required.
	Dir string
	// Port on 127.0.0.1. Required.
	Port int
	// BinDir holds initdb and postgres. Empty: FindBinDir.
	BinDir string
	// MaxConnections is postgres's max_connections. Zero: 400 (Temporal opens
	// a pool per store and service; 16 shards and a few hosts need more than
	// the default 100).
	MaxConnections int
}

// Server is a running PostgreSQL server.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// Password of User.
	Password string
	// Pid of the postmaster.
	Pid int

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// FindBinDir returns the directory of the newest PostgreSQL server binaries
// Debian installed (/usr/lib/postgresql/<version>/bin), or an error that says how
// to install them.
func FindBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install Debian's postgresql package (apt-get install postgresql), or pass their directory")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start starts PostgreSQL on opts.Port, running initdb first when Dir/data does
// not exist yet, and returns once it accepts connections. Run as root, the
// server runs as the system user "postgres" (which Debian's package creates):
// PostgreSQL refuses to run as root.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" || opts.Port <= 0 {
		return nil, errors.New("postgres: Dir and Port are required")
	}
	if opts.BinDir == "" {
		var err error
		if opts.BinDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	if opts.MaxConnections == 0 {
		opts.MaxConnections = 400
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cred, err := runAs(dir)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	password, err := initdb(ctx, opts.BinDir, dir, data, cred)
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("postgres: log file: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(filepath.Join(opts.BinDir, "postgres"),
		"-D", data,
		"-p", strconv.Itoa(opts.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", // TCP on loopback only
		"-c", "max_connections="+strconv.Itoa(opts.MaxConnections),
		"-c", "shared_buffers=256MB",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// SIGINT is PostgreSQL's fast shutdown: sessions are ended, the data is
	// checkpointed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGINT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("postgres: start %s: %w", cmd.Path, err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)), Password: password, Pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	if err := s.waitReady(ctx, opts.BinDir, filepath.Join(dir, "postgres.log")); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// waitReady waits until the server accepts TCP connections, failing early
// when it exits (a port in use, a bad data directory: its log says why).
func (s *Server) waitReady(ctx context.Context, binDir, logPath string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		// pg_isready: accepting connections, not only listening (a server
		// starting up or recovering answers on the port, and refuses sessions).
		_, port, _ := net.SplitHostPort(s.Addr)
		if exec.CommandContext(ctx, filepath.Join(binDir, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", port, "-t", "1").Run() == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres: exited at start (%v); the end of %s:\n%s", s.err, logPath, tail(logPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres: not accepting connections on %s after 60s; see %s", s.Addr, logPath)
		}
	}
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 30 s) and
// returns once it has exited.
func (s *Server) Stop() {
	if s == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-s.Pid, syscall.SIGKILL)
		<-s.done
	}
}

// Done is closed when the server has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// initdb creates the data directory when it does not exist, with User as its
// superuser under a new random password, and returns the password.
func initdb(ctx context.Context, binDir, dir, data string, cred *syscall.Credential) (string, error) {
	pwPath := filepath.Join(dir, "password")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		pw, err := os.ReadFile(pwPath)
		if err != nil {
			return "", fmt.Errorf("postgres: %s exists but its password file does not: %w", data, err)
		}
		return strings.TrimSpace(string(pw)), nil
	}
	if err := os.RemoveAll(data); err != nil { // a half-made one, from an interrupted initdb
		return "", err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	password := hex.EncodeToString(raw)
	if err := os.WriteFile(pwPath, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	// initdb reads the password from a file; it runs as the server's user,
	// so that one is readable by that user only, and removed at once.
	pwFile := filepath.Join(dir, ".initdb-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return "", err
	}
	defer os.Remove(pwFile)
	if err := chown(pwFile, cred); err != nil {
		return "", err
	}
	if err := os.Mkdir(data, 0o700); err != nil {
		return "", err
	}
	if err := chown(data, cred); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", data, "-U", User, "--pwfile="+pwFile, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("postgres: initdb %s: %w\n%s", data, err, out.String())
	}
	return password, nil
}

// runAs is the credential the server runs with: nil (ours) unless we are root,
// then the "postgres" user's, who is given dir.
func runAs(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("postgres: running as root, and PostgreSQL refuses to: the system user \"postgres\" (made by Debian's postgresql package) is needed to run it: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	if err := chown(dir, cred); err != nil {
		return nil, err
	}
	return cred, nil
}

func chown(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// tail is the last lines of a log, for errors.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}
