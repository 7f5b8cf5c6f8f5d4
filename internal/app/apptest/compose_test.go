package apptest

import (
	"debug/elf"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	natsroles "github.com/otjhelper/otj/deploy/nats"
)

// composeFile is the part of compose.yaml the deployment tests read.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Configs  map[string]struct {
		Content string `yaml:"content"`
		File    string `yaml:"file"`
	} `yaml:"configs"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Profiles    []string          `yaml:"profiles"`
	Deploy      struct {
		Replicas *int `yaml:"replicas"`
	} `yaml:"deploy"`
}

// instances is how many containers compose starts for the service.
func (s composeService) instances() int {
	if s.Deploy.Replicas != nil {
		return *s.Deploy.Replicas
	}
	return 1
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c
}

// TestComposeMatchesTopology checks compose.yaml against what
// TestTopology runs as real processes: each app service runs the command
// of its role with exactly that role's settings, and the file holds the
// deployment the README describes (PostgreSQL, a three-node JetStream
// cluster, two web, two workers, Redis behind a profile). A setting added
// to one and not the other fails here, so the two cannot drift.
func TestComposeMatchesTopology(t *testing.T) {
	c := readCompose(t)
	count := map[string]int{}
	for name, s := range c.Services {
		if s.Build == nil || len(s.Command) == 0 {
			continue // not the app's image
		}
		role := s.Command[0]
		want, ok := topologyRoles[role]
		if !ok {
			t.Errorf("service %s runs app %q, which the topology test does not run", name, role)
			continue
		}
		if len(s.Command) != 1 {
			t.Errorf("service %s: command %q, want [%q]: settings come from the environment", name, s.Command, role)
		}
		count[role] += s.instances()
		got := slices.Sorted(maps.Keys(s.Environment))
		if !slices.Equal(got, want.settings) {
			t.Errorf("service %s (app %s) sets\n  %s\nthe topology test's %s processes get\n  %s", name, role, strings.Join(got, " "), role, strings.Join(want.settings, " "))
		}
		for _, k := range got {
			if !slices.Contains(appSettings, k) {
				t.Errorf("service %s sets %s, which the app does not read", name, k)
			}
		}
	}
	for role, r := range topologyRoles {
		if count[role] != r.compose {
			t.Errorf("compose.yaml runs %d app %s, want %d", count[role], role, r.compose)
		}
	}

	var nats []string
	for name, s := range c.Services {
		if strings.HasPrefix(s.Image, "nats:") {
			nats = append(nats, name)
		}
	}
	if len(nats) != 3 {
		t.Errorf("NATS services %v, want a three-node cluster", nats)
	}
	// The NATS configuration, as compose hands it to each node, loads in
	// nats-server and admits the users of deploy/nats/roles.conf, which it
	// includes, with their permissions: the ones TestTopology's cluster
	// runs with.
	if f := c.Configs["nats-roles"].File; filepath.Clean(f) != filepath.Join("deploy", "nats", "roles.conf") {
		t.Errorf("compose.yaml's NATS roles come from %q, want deploy/nats/roles.conf", f)
	}
	for _, name := range nats {
		for _, v := range natsroles.PasswordVars {
			if c.Services[name].Environment[v] == "" {
				t.Errorf("NATS service %s has no %s, which roles.conf reads", name, v)
			}
		}
	}
	opts := composeNATSOptions(t, c.Configs["nats"].Content, "nats-1")
	if !opts.JetStream || opts.Cluster.Name == "" || opts.Cluster.Port == 0 {
		t.Errorf("the NATS config: JetStream %v, cluster %q on port %d; want a JetStream cluster", opts.JetStream, opts.Cluster.Name, opts.Cluster.Port)
	}
	var routes []string
	for _, r := range opts.Routes {
		routes = append(routes, r.Hostname())
	}
	if slices.Sort(nats); !slices.Equal(slices.Sorted(slices.Values(routes)), nats) {
		t.Errorf("the NATS config routes to %v, want every node of %v", routes, nats)
	}
	documented := map[string]*server.Permissions{}
	for _, u := range documentedUsers(t) {
		documented[u.Username] = u.Permissions
	}
	if len(opts.Users) != len(documented) {
		t.Errorf("compose.yaml's NATS admits %d users, the README documents %d", len(opts.Users), len(documented))
	}
	for _, u := range opts.Users {
		if !reflect.DeepEqual(u.Permissions, documented[u.Username]) {
			t.Errorf("compose.yaml's NATS user %s has other permissions than the README's", u.Username)
		}
	}
	for _, role := range []struct{ service, setting, user string }{
		{"web-1", "NATS_USER", natsroles.Web}, {"web-2", "NATS_USER", natsroles.Web}, {"worker", "NATS_USER", natsroles.Worker},
		{"web-1", "NATS_MAINT_USER", natsroles.Maint}, {"web-2", "NATS_MAINT_USER", natsroles.Maint},
	} {
		if got := c.Services[role.service].Environment[role.setting]; got != role.user {
			t.Errorf("service %s connects as %s %q, want %s", role.service, role.setting, got, role.user)
		}
	}
	if pg := c.Services["postgres"]; !strings.HasPrefix(pg.Image, "postgres:") {
		t.Errorf("no PostgreSQL service (postgres: image %q)", pg.Image)
	}
	if r := c.Services["redis"]; !strings.HasPrefix(r.Image, "redis:") || !slices.Equal(r.Profiles, []string{"redis"}) {
		t.Errorf("redis service: image %q, profiles %v; want Redis behind the redis profile", r.Image, r.Profiles)
	}
}

// TestProcfile checks that the Procfile runs the two roles a platform
// scales, with the commands the topology test runs.
func TestProcfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "Procfile"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^(\w+):\s*(?:\w+=\S+\s+)*app (\w+)$`)
	got := map[string]string{}
	for _, m := range line.FindAllStringSubmatch(string(b), -1) {
		got[m[1]] = m[2]
	}
	if want := map[string]string{"web": "web", "worker": "worker"}; !maps.Equal(got, want) {
		t.Errorf("Procfile runs %v, want %v:\n%s", got, want, b)
	}
}

// TestDockerfileBuildsStaticBinary runs the Dockerfile's own build
// command (no container runtime is needed for that) and checks that it
// gives a static binary, which the distroless image needs, and that the
// image runs it as a user other than root.
func TestDockerfileBuildsStaticBinary(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(df, -1)); n < 2 {
		t.Errorf("Dockerfile has %d stages, want a multi-stage build", n)
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindStringSubmatch(df)
	if user == nil || strings.HasPrefix(user[1], "0") || strings.HasPrefix(user[1], "root") {
		t.Errorf("Dockerfile USER %v: want a non-root user", user)
	}
	if !regexp.MustCompile(`(?m)^ENTRYPOINT \["app"\]`).MatchString(df) {
		t.Error(`Dockerfile: want ENTRYPOINT ["app"]`)
	}
	build := regexp.MustCompile(`RUN (CGO_ENABLED=0 go build .* -o )/out/app( \./cmd/app)`).FindStringSubmatch(df)
	if build == nil {
		t.Fatal("Dockerfile: no `RUN CGO_ENABLED=0 go build ... -o /out/app ./cmd/app` line")
	}
	if testing.Short() {
		t.Skip("-short: not building the binary")
	}
	out := filepath.Join(t.TempDir(), "app")
	cmd := exec.Command("sh", "-c", build[1]+out+build[2])
	cmd.Dir = filepath.Join("..", "..", "..")
	cmd.Env = append(os.Environ(), "VERSION=v0.0.0-composetest")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, msg)
	}
	// The version the image is built with is the one app version prints.
	if v, err := exec.Command(out, "version").Output(); err != nil || !strings.Contains(string(v), "v0.0.0-composetest") {
		t.Errorf("app version of the Dockerfile's build: %q, %v; want the VERSION it was built with", v, err)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the Dockerfile's build gives a dynamically linked binary (%s)", p.Type)
		}
	}
}

// composeVar is a variable compose interpolates: ${NAME}, ${NAME:-default}
// or ${NAME:?message}.
var composeVar = regexp.MustCompile(`\$\{([A-Z_]+)(?::[-?][^}]*)?\}`)

// composeNATSOptions loads the NATS config content of compose.yaml as a
// node named node would: compose's variables given test values and $$
// turned into $, as compose does, then nats-server's own parser.
func composeNATSOptions(t *testing.T, content, node string) *server.Options {
	t.Helper()
	values := map[string]string{"NATS_ROUTE_PASSWORD": "route-pass-0123456789abcdef"}
	conf := composeVar.ReplaceAllStringFunc(content, func(v string) string {
		name := composeVar.FindStringSubmatch(v)[1]
		if val, ok := values[name]; ok {
			return val
		}
		return "test-" + strings.ToLower(name)
	})
	conf = strings.ReplaceAll(conf, "$$", "$")
	dir := t.TempDir()
	file := filepath.Join(dir, "otj.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	// Where compose mounts deploy/nats/roles.conf, with the passwords it
	// reads from the node's environment.
	if err := os.WriteFile(filepath.Join(dir, "roles.conf"), []byte(natsroles.Conf), 0o600); err != nil {
		t.Fatal(err)
	}
	for role, v := range natsroles.PasswordVars {
		t.Setenv(v, documentedPasswords[role])
	}
	t.Setenv("SERVER_NAME", node)
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("compose.yaml's NATS config does not load: %v\n%s", err, conf)
	}
	return opts
}
