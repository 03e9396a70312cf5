package docker

import (
	"bufio"
	"bytes"
	"encoding/json"
	enumspb "go.temporal.io/api/enums/v1"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dispatchflow/dispatchflow/app"
	"github.com/dispatchflow/dispatchflow/auth"
	"github.com/dispatchflow/dispatchflow/config"
	"github.com/dispatchflow/dispatchflow/workflows"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image         string `yaml:"image"`
	ContainerName string `yaml:"container_name"`
	Build         *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
		Target     string `yaml:"target"`
	} `yaml:"build"`
	// Environment is a map or a list of NAME=value.
	Environment any `yaml:"environment"`
	Deploy      struct {
		Replicas *int `yaml:"replicas"`
	} `yaml:"deploy"`
	Secrets []string `yaml:"secrets"`
}

// env returns the service's variables as a map.
func (s composeService) env(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	switch e := s.Environment.(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			if v == nil {
				v = ""
			}
			m[k] = yamlString(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(yamlString(kv), "=")
			m[k] = v
		}
	default:
		t.Fatalf("environment: unexpected %T", e)
	}
	return m
}

func yamlString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := yaml.Marshal(v)
	return strings.TrimSpace(string(b))
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if len(c.Services) == 0 {
		t.Fatal("compose.yaml: no services")
	}
	return c
}

// ours lists the services built from our Dockerfile.
func (c composeFile) ours(t *testing.T) map[string]composeService {
	t.Helper()
	ours := map[string]composeService{}
	for name, s := range c.Services {
		if s.Build == nil {
			continue
		}
		if got := filepath.Join(s.Build.Context, s.Build.Dockerfile); got != filepath.Join("..", "docker", "Dockerfile") {
			t.Errorf("service %s builds %s, want docker/Dockerfile with the repository as context", name, got)
		}
		ours[name] = s
	}
	return ours
}

// configVariables are the variables dispatchflow reads, from the usage table
// `dispatchflow help` prints (envconfig's own names for config.Config).
func configVariables(t *testing.T) map[string]bool {
	t.Helper()
	var buf bytes.Buffer
	app.PrintConfigUsage(&buf)
	vars := map[string]bool{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && f[0] != "VARIABLE" {
			vars[f[0]] = true
		}
	}
	if !vars["TEMPORAL_ADDRESS"] || !vars[config.Prefix+"_ESP"] {
		t.Fatalf("usage table without TEMPORAL_ADDRESS or DISPATCHFLOW_ESP: %v", vars)
	}
	return vars
}

// The API and the worker are configured only with real variables, with values the
// configuration accepts (as the process would at start), and the worker sends
// through Mailpit.
func TestComposeConfiguration(t *testing.T) {
	c := loadCompose(t)
	ours := c.ours(t)
	for _, want := range []string{"api", "worker"} {
		if _, ok := ours[want]; !ok {
			t.Fatalf("no service %q built from docker/Dockerfile", want)
		}
	}
	known := configVariables(t)
	for name, s := range ours {
		t.Run(name, func(t *testing.T) {
			env := s.env(t)
			for k := range env {
				if !known[k] {
					t.Errorf("sets %s, which is not a configuration variable (dispatchflow help)", k)
				}
			}
			for k, v := range env {
				if k == "DISPATCHFLOW_API_KEYS_FILE" {
					// The compose secret; docs/docker.md has the user make it.
					if v != "/run/secrets/dispatchflow-keys.yaml" || !slices.Contains(s.Secrets, "dispatchflow-keys.yaml") {
						t.Errorf("DISPATCHFLOW_API_KEYS_FILE=%q with secrets %v, want the dispatchflow-keys.yaml secret", v, s.Secrets)
					}
					v = exampleKeysFile(t)
				}
				t.Setenv(k, v)
			}
			if name == "api" {
				cfg, _ := config.Load()
				if err := cfg.ValidateAPI(); err != nil {
					t.Errorf("the API would refuse to start: %v", err)
				}
			}
			if _, err := config.Load(); err != nil {
				t.Errorf("the configuration refuses its environment: %v", err)
			}
		})
	}

	w := ours["worker"]
	env := w.env(t)
	if env["DISPATCHFLOW_ESP"] != "smtp" {
		t.Errorf("worker: DISPATCHFLOW_ESP=%q, want smtp", env["DISPATCHFLOW_ESP"])
	}
	host, _, _ := strings.Cut(env["DISPATCHFLOW_SMTP_ADDR"], ":")
	if sink, ok := c.Services[host]; !ok || !strings.HasPrefix(sink.Image, "axllent/mailpit:") {
		t.Errorf("worker: DISPATCHFLOW_SMTP_ADDR=%q, want the Mailpit service's address", env["DISPATCHFLOW_SMTP_ADDR"])
	}
	if w.ContainerName != "" || w.Deploy.Replicas == nil || *w.Deploy.Replicas < 1 {
		t.Errorf("worker: container_name %q, deploy.replicas %v; want no container_name (it could not scale) and replicas set",
			w.ContainerName, w.Deploy.Replicas)
	}
	if got, want := ours["api"].env(t)["TEMPORAL_ADDRESS"], env["TEMPORAL_ADDRESS"]; got != want || got == "" {
		t.Errorf("api and worker TEMPORAL_ADDRESS %q and %q, want the same cluster", got, want)
	}
	host, _, _ = strings.Cut(env["TEMPORAL_ADDRESS"], ":")
	if s, ok := c.Services[host]; !ok || !strings.HasPrefix(s.Image, "temporalio/server:") {
		t.Errorf("TEMPORAL_ADDRESS=%q, want the temporalio/server service", env["TEMPORAL_ADDRESS"])
	}
}

// pinned: a version tag (not latest, not a moving name like "alpine"), or a digest.
var pinned = regexp.MustCompile(`^[a-z0-9./_-]+(:v?[0-9]+(\.[0-9]+)*[A-Za-z0-9._-]*)?(@sha256:[0-9a-f]{64})?$`)

func checkPinned(t *testing.T, where, image string) {
	t.Helper()
	hasTag := strings.Contains(image[strings.LastIndex(image, "/")+1:], ":")
	if !pinned.MatchString(image) || (!hasTag && !strings.Contains(image, "@sha256:")) {
		t.Errorf("%s: image %q is not pinned by version or digest", where, image)
	}
}

// The stack is all there, every image pinned.
func TestComposeImages(t *testing.T) {
	c := loadCompose(t)
	stages := dockerfileStages(t)
	found := map[string]bool{}
	for name, s := range c.Services {
		if s.Build != nil {
			if _, ok := stages[s.Build.Target]; !ok {
				t.Errorf("service %s builds target %q, not a stage of docker/Dockerfile", name, s.Build.Target)
			}
			continue
		}
		checkPinned(t, "service "+name, s.Image)
		repo, _, _ := strings.Cut(s.Image, ":")
		found[repo] = true
	}
	for _, want := range []string{"postgres", "temporalio/server", "temporalio/admin-tools", "temporalio/ui", "axllent/mailpit"} {
		if !found[want] {
			t.Errorf("no %s service", want)
		}
	}
}

// The search attributes registered are exactly the ones the workflow sets.
func TestComposeSearchAttributes(t *testing.T) {
	var want []string
	for name, typ := range workflows.SearchAttributeTypes() {
		want = append(want, name+":"+map[enumspb.IndexedValueType]string{
			enumspb.INDEXED_VALUE_TYPE_KEYWORD: "Keyword", enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST: "KeywordList",
		}[typ])
	}
	sort.Strings(want)
	var got []string
	for name, s := range loadCompose(t).Services {
		if v, ok := s.env(t)["SEARCH_ATTRIBUTES"]; ok && strings.HasPrefix(s.Image, "temporalio/admin-tools:") {
			got = strings.Fields(v)
			t.Logf("service %s registers %v", name, got)
		}
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("compose registers search attributes %v, want workflows.SearchAttributes %v", got, want)
	}
}

// dockerfileStages maps each stage name to its instructions.
func dockerfileStages(t *testing.T) map[string][]string {
	t.Helper()
	stages := map[string][]string{}
	var cur string
	for _, ins := range instructions(t, "Dockerfile") {
		f := strings.Fields(ins)
		if strings.EqualFold(f[0], "FROM") {
			cur = ""
			if len(f) >= 4 && strings.EqualFold(f[2], "AS") {
				cur = f[3]
			}
		}
		stages[cur] = append(stages[cur], ins)
	}
	return stages
}

// instructions reads a Dockerfile's instructions, continuation lines joined,
// comments dropped.
func instructions(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}

// Every base image is pinned, the binaries are static, and every target runs as
// a non-root user.
func TestDockerfile(t *testing.T) {
	stages := dockerfileStages(t)
	user := map[string]string{} // stage → its user, inherited from its base stage
	for _, name := range stageOrder(t) {
		for _, ins := range stages[name] {
			f := strings.Fields(ins)
			switch strings.ToUpper(f[0]) {
			case "FROM":
				if _, isStage := stages[f[1]]; isStage {
					user[name] = user[f[1]]
				} else {
					checkPinned(t, "FROM", f[1])
				}
			case "USER":
				user[name] = f[1]
			case "RUN":
				if strings.Contains(ins, "go build") && !strings.Contains(ins, "CGO_ENABLED=0") {
					t.Errorf("stage %s builds without CGO_ENABLED=0: %s", name, ins)
				}
			}
		}
	}
	for _, target := range []string{"api", "worker"} {
		u, _, _ := strings.Cut(user[target], ":")
		if u == "" || u == "root" || u == "0" {
			t.Errorf("target %s runs as user %q, want a non-root user", target, user[target])
		}
	}
}

func stageOrder(t *testing.T) []string {
	var names []string
	for _, ins := range instructions(t, "Dockerfile") {
		if f := strings.Fields(ins); strings.EqualFold(f[0], "FROM") && len(f) >= 4 {
			names = append(names, f[3])
		}
	}
	return names
}

// The Dockerfile builds the packages `make build` builds.
func TestDockerfileBuildsWhatMakeBuilds(t *testing.T) {
	var docker []string
	for _, ins := range instructions(t, "Dockerfile") {
		if strings.HasPrefix(strings.ToUpper(ins), "RUN ") {
			docker = append(docker, goBuildPackages(ins)...)
		}
	}
	mk, err := os.ReadFile(filepath.Join("..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var makePkgs []string
	inBuild := false
	for _, line := range strings.Split(string(mk), "\n") {
		switch {
		case strings.HasPrefix(line, "build:"):
			inBuild = true
		case strings.HasPrefix(line, "\t") && inBuild:
			makePkgs = append(makePkgs, goBuildPackages(line)...)
		default:
			inBuild = false
		}
	}
	sort.Strings(docker)
	sort.Strings(makePkgs)
	if len(makePkgs) == 0 || !slices.Equal(docker, makePkgs) {
		t.Errorf("docker/Dockerfile builds %v, the Makefile's build target %v: want the same packages", docker, makePkgs)
	}
}

// goBuildFlagsWithValue are the go build flags whose value is the next word.
var goBuildFlagsWithValue = map[string]bool{
	"-o": true, "-C": true, "-ldflags": true, "-gcflags": true, "-asmflags": true, "-tags": true, "-p": true,
	"-mod": true, "-modfile": true, "-overlay": true, "-pgo": true, "-buildmode": true, "-pkgdir": true,
	"-toolexec": true, "-compiler": true, "-installsuffix": true, "-gccgoflags": true, "-covermode": true, "-coverpkg": true,
}

// goBuildPackages returns the packages of the go build commands in a shell line,
// as "dir:package" when built with -C dir.
func goBuildPackages(line string) []string {
	var pkgs []string
	for _, cmd := range regexp.MustCompile(`&&|;|\|\|`).Split(line, -1) {
		words := shellWords(cmd)
		i := slices.Index(words, "go")
		if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
			continue
		}
		dir := "."
		for j := i + 2; j < len(words); j++ {
			w := words[j]
			switch {
			case strings.HasPrefix(w, "-") && !strings.Contains(w, "="):
				if goBuildFlagsWithValue[w] && j+1 < len(words) {
					if w == "-C" {
						dir = words[j+1]
					}
					j++
				}
			case strings.HasPrefix(w, "-"):
			default:
				pkgs = append(pkgs, dir+":"+w)
			}
		}
	}
	return pkgs
}

// shellWords splits s into words, keeping quoted spaces.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// exampleKeysFile writes a keys file as docs/docker.md has the user make one.
func exampleKeysFile(t *testing.T) string {
	t.Helper()
	_, k, err := auth.NewKey("docker", "default", []auth.Scope{auth.ScopeAll})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{
		"workspaces": []auth.Workspace{{Name: "default", SigningSecrets: []string{auth.NewSigningSecret()},
			IntakeSecrets: []string{auth.NewSigningSecret()}}},
		"keys": []auth.Key{k},
	})
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
