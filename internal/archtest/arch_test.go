package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rule is one boundary of the import graph. Directories are relative to
// the module root and stand for themselves and everything below them.
type rule struct {
	name string
	// from are the directories whose packages the rule constrains; none
	// means every package.
	from []string
	// to are the directories those packages must not reach; forbid, for
	// a rule that depends on both ends, is used instead.
	to     []string
	forbid func(from, to string) bool
	// direct checks only what a package imports itself, not what its
	// imports bring in.
	direct bool
	// tests counts test files and what they import too.
	tests bool
}

// rules are the boundaries the README's Architecture section draws.
var rules = []rule{
	{
		// The compiler holds this one; checked all the same, so that the
		// table states every boundary.
		name:   "a package under X/internal is imported only from X's tree",
		forbid: otherInternal,
		direct: true,
		tests:  true,
	},
	{
		// The web learns the report's job type from its configuration.
		name:  "modules/web does not depend on modules/reports",
		from:  []string{"modules/web"},
		to:    []string{"modules/reports"},
		tests: true,
	},
	{
		// Each job module describes its kind with the task registry, in
		// tasktype's types; the web shows the registry's kinds.
		name:  "modules/web depends on no job module",
		from:  []string{"modules/web"},
		to:    []string{"modules/analytics", "modules/digest", "modules/account"},
		tests: true,
	},
	{
		// A job module's pages and downloads are plain functions the web
		// calls (tasktype.Kind), not web handlers.
		name: "no job module depends on modules/web",
		from: []string{"modules/reports", "modules/analytics", "modules/digest", "modules/account"},
		to:   []string{"modules/web"},
	},
	{
		// Test helpers that start a broker live beside the driver.
		name:  "platform depends on no module",
		from:  []string{"platform"},
		to:    []string{"modules"},
		tests: true,
	},
	{
		// The driver port is the engine's seam with its drivers, all of
		// them in its tree: everyone else goes through tasks.Client.
		name: "only modules/tasks imports the driver port",
		forbid: func(from, to string) bool {
			return under("modules/tasks/internal/driver", to) && !under("modules/tasks", from)
		},
		direct: true,
		tests:  true,
	},
	{
		// The bench measures the system through the Client and its
		// Observer; the composition root builds the drivers for it.
		name:   "the bench imports no driver",
		from:   []string{"internal/app/bench"},
		to:     []string{"modules/tasks/jetstream", "modules/tasks/redisbroker", "modules/tasks/internal"},
		direct: true,
		tests:  true,
	},
	{
		// Job types register with the engine, never the other way round.
		name: "the task engine depends on no job type",
		from: []string{"modules/tasks"},
		to:   []string{"modules/reports", "modules/activity"},
	},
}

// constrains reports whether the rule constrains the package in dir.
func (r rule) constrains(dir string) bool {
	return len(r.from) == 0 || slices.ContainsFunc(r.from, func(d string) bool { return under(d, dir) })
}

// forbids reports whether the rule forbids the package in from to reach
// the one in to.
func (r rule) forbids(from, to string) bool {
	if r.forbid != nil {
		return r.forbid(from, to)
	}
	return slices.ContainsFunc(r.to, func(d string) bool { return under(d, to) })
}

// under reports whether dir is top or below it.
func under(top, dir string) bool {
	return dir == top || strings.HasPrefix(dir, top+"/")
}

// otherInternal forbids a package under X/internal (or X/internal
// itself) to those outside X's tree, as the go command does.
func otherInternal(from, to string) bool {
	parent, ok := internalParent(to)
	return ok && parent != "." && !under(parent, from)
}

// internalParent is the directory the last internal element of dir sits
// in: "." for a top-level internal.
func internalParent(dir string) (string, bool) {
	if dir == "internal" || strings.HasPrefix(dir, "internal/") {
		return ".", true
	}
	if i := strings.LastIndex(dir+"/", "/internal/"); i >= 0 {
		return dir[:i], true
	}
	return "", false
}

// pkg is one package of the module as the check sees it.
type pkg struct {
	id   string // go list's ImportPath, test variants in brackets
	dir  string // relative to the module root, slash-separated
	test bool   // compiled for a test: test files, or a dependency recompiled for them
	// imports and deps are the ids this package imports and all it
	// depends on.
	imports, deps []string
}

// graph is the module's packages by id, and the directory of every
// package of the module by id.
type graph struct {
	pkgs []pkg
	dirs map[string]string
	byID map[string]pkg
}

// violations lists, for each package the rule constrains, each package
// it reaches and must not, with the import chain that reaches it.
func (g graph) violations(r rule) []string {
	var out []string
	for _, p := range g.pkgs {
		if p.test && !r.tests || !r.constrains(p.dir) {
			continue
		}
		reached := p.deps
		if r.direct {
			reached = p.imports
		}
		seen := make(map[string]bool)
		for _, id := range reached {
			to, ok := g.dirs[id]
			if !ok || seen[to] || !r.forbids(p.dir, to) {
				continue
			}
			seen[to] = true
			chain := g.chain(p.id, id)
			// A package reached through another forbidden one is the
			// same crossing, already listed.
			if slices.ContainsFunc(chain[1:len(chain)-1], func(d string) bool { return r.forbids(p.dir, d) }) {
				continue
			}
			out = append(out, strings.Join(chain, " -> "))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// chain is a shortest import chain from id to target, by directory, a
// test package's first element marked.
func (g graph) chain(id, target string) []string {
	prev := map[string]string{id: ""}
	for queue := []string{id}; len(queue) > 0; queue = queue[1:] {
		if _, ok := prev[target]; ok {
			break
		}
		for _, next := range g.byID[queue[0]].imports {
			if _, seen := prev[next]; !seen && g.dirs[next] != "" {
				prev[next] = queue[0]
				queue = append(queue, next)
			}
		}
	}
	path := []string{g.dirs[target]}
	if _, ok := prev[target]; ok {
		for at := prev[target]; at != ""; at = prev[at] {
			path = append(path, g.dirs[at])
		}
	} else {
		path = append(path, g.dirs[id]) // not by imports alone: the two ends
	}
	slices.Reverse(path)
	if g.byID[id].test {
		path[0] += " (tests)"
	}
	return path
}

// loadGraph reads the module's import graph, test files included, with
// go list.
func loadGraph(t *testing.T) graph {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the import check runs go list: %v", err)
	}
	root := moduleRoot(t)
	cmd := exec.Command(goCmd, "list", "-deps", "-test", "-json", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	type listed struct {
		ImportPath string
		Dir        string
		Name       string
		ForTest    string
		Module     *struct{ Main bool }
		Imports    []string
		Deps       []string
	}
	g := graph{dirs: make(map[string]string), byID: make(map[string]pkg)}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var l listed
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if l.Module == nil || !l.Module.Main {
			continue
		}
		rel, err := filepath.Rel(root, l.Dir)
		if err != nil {
			t.Fatal(err)
		}
		g.dirs[l.ImportPath] = filepath.ToSlash(rel)
		// A test binary's generated main imports the package's tests and
		// nothing else: they are checked themselves.
		if l.Name == "main" && strings.HasSuffix(l.ImportPath, ".test") {
			continue
		}
		p := pkg{id: l.ImportPath, dir: filepath.ToSlash(rel), test: l.ForTest != "", imports: l.Imports, deps: l.Deps}
		g.pkgs = append(g.pkgs, p)
		g.byID[p.id] = p
	}
	if len(g.pkgs) == 0 {
		t.Fatal("go list found no packages of the module")
	}
	return g
}

// TestImports checks the module's import graph against every rule.
func TestImports(t *testing.T) {
	g := loadGraph(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			// A directory that moved would leave the rule nothing to check.
			for _, d := range slices.Concat(r.from, r.to) {
				if !slices.ContainsFunc(g.pkgs, func(p pkg) bool { return under(d, p.dir) }) {
					t.Errorf("no package in %s: the rule checks nothing; where did it go?", d)
				}
			}
			for _, v := range g.violations(r) {
				t.Errorf("%s", v)
			}
		})
	}
}

// TestRulesCatch shows each rule failing on a graph that breaks it and
// passing on one that keeps it, the rules today's tree cannot break
// included.
func TestRulesCatch(t *testing.T) {
	for _, tt := range []struct {
		rule string
		pkgs []pkg
		want []string
	}{
		{"a package under X/internal is imported only from X's tree", []pkg{
			{id: "modules/web", imports: []string{"modules/tasks/internal/engine"}},
			{id: "modules/tasks/jetstream", imports: []string{"modules/tasks/internal/engine"}},
			{id: "modules/tasks", imports: []string{"modules/tasks/internal"}},
			{id: "internal/app", imports: []string{"internal/archtest", "modules/tasks"}, deps: []string{"modules/tasks/internal"}},
			{id: "modules/tasks/internal/engine"}, {id: "modules/tasks/internal"}, {id: "internal/archtest"},
		}, []string{"modules/web -> modules/tasks/internal/engine"}},
		{"modules/web does not depend on modules/reports", []pkg{
			{id: "modules/web", imports: []string{"modules/tasks"}, deps: []string{"modules/tasks"}},
			{id: "modules/web_test", dir: "modules/web", test: true,
				imports: []string{"modules/web", "modules/reports/fake"}, deps: []string{"modules/web", "modules/reports/fake", "modules/reports"}},
			{id: "modules/reports/fake", imports: []string{"modules/reports"}, deps: []string{"modules/reports"}},
			{id: "modules/reports", imports: []string{"modules/tasks"}, deps: []string{"modules/tasks"}},
			{id: "modules/tasks"},
		}, []string{"modules/web (tests) -> modules/reports/fake"}},
		{"modules/web depends on no job module", []pkg{
			{id: "modules/web", imports: []string{"modules/tasks"}},
			{id: "modules/web_test", dir: "modules/web", test: true, imports: []string{"modules/web", "modules/digest"}},
			{id: "modules/digest", imports: []string{"modules/tasks"}},
			{id: "modules/tasks"},
		}, []string{"modules/web (tests) -> modules/digest"}},
		{"no job module depends on modules/web", []pkg{
			{id: "modules/analytics", imports: []string{"modules/web"}, deps: []string{"modules/web", "modules/tasks"}},
			{id: "modules/reports", imports: []string{"modules/tasks"}},
			{id: "modules/web", imports: []string{"modules/tasks"}},
			{id: "modules/tasks"},
		}, []string{"modules/analytics -> modules/web"}},
		{"platform depends on no module", []pkg{
			{id: "platform/testsupport", imports: []string{"platform/database", "modules/tasks/jetstream"},
				deps: []string{"platform/database", "modules/tasks/jetstream", "modules/tasks"}},
			{id: "platform/database"},
			{id: "modules/tasks/jetstream", imports: []string{"modules/tasks"}, deps: []string{"modules/tasks"}},
			{id: "modules/tasks"},
		}, []string{"platform/testsupport -> modules/tasks/jetstream"}},
		{"only modules/tasks imports the driver port", []pkg{
			{id: "internal/app", imports: []string{"modules/tasks/internal/driver", "modules/tasks"}},
			{id: "modules/tasks/redisbroker", imports: []string{"modules/tasks/internal/driver"}},
			{id: "modules/tasks", imports: []string{"modules/tasks/internal/driver"}},
			{id: "modules/tasks/internal/driver"},
		}, []string{"internal/app -> modules/tasks/internal/driver"}},
		{"the bench imports no driver", []pkg{
			{id: "internal/app/bench", imports: []string{"modules/tasks", "modules/tasks/jetstream"},
				deps: []string{"modules/tasks", "modules/tasks/internal/worker", "modules/tasks/jetstream"}},
			{id: "internal/app/bench_test", dir: "internal/app/bench", test: true, imports: []string{"modules/tasks/redisbroker"}},
			{id: "modules/tasks", imports: []string{"modules/tasks/internal/worker"}},
			{id: "modules/tasks/internal/worker"}, {id: "modules/tasks/jetstream"}, {id: "modules/tasks/redisbroker"},
		}, []string{"internal/app/bench (tests) -> modules/tasks/redisbroker", "internal/app/bench -> modules/tasks/jetstream"}},
		{"the task engine depends on no job type", []pkg{
			{id: "modules/tasks/jetstream", imports: []string{"modules/tasks/brokertest"}, deps: []string{"modules/tasks/brokertest", "modules/activity"}},
			{id: "modules/tasks/brokertest", imports: []string{"modules/activity"}, deps: []string{"modules/activity"}},
			{id: "modules/tasks_test", dir: "modules/tasks", test: true, imports: []string{"modules/reports"}, deps: []string{"modules/reports"}},
			{id: "modules/reports", imports: []string{"modules/tasks"}, deps: []string{"modules/tasks"}},
			{id: "modules/tasks"}, {id: "modules/activity"},
		}, []string{"modules/tasks/brokertest -> modules/activity", "modules/tasks/jetstream -> modules/tasks/brokertest -> modules/activity"}},
	} {
		t.Run(tt.rule, func(t *testing.T) {
			i := slices.IndexFunc(rules, func(r rule) bool { return r.name == tt.rule })
			if i < 0 {
				t.Fatalf("no rule %q", tt.rule)
			}
			g := graph{dirs: make(map[string]string), byID: make(map[string]pkg)}
			for _, p := range tt.pkgs {
				if p.dir == "" {
					p.dir = p.id
				}
				if p.deps == nil {
					p.deps = p.imports
				}
				g.pkgs = append(g.pkgs, p)
				g.dirs[p.id], g.byID[p.id] = p.dir, p
			}
			if got := g.violations(rules[i]); !slices.Equal(got, tt.want) {
				t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
