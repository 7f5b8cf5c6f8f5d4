package archtest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// driverPort is the import path of the engine's seam with its drivers.
const driverPort = "github.com/otjhelper/otj/modules/tasks/internal/driver"

// driverTrees are where a driver's own values may be asserted to its
// own types: the port and the drivers.
var driverTrees = []string{"modules/tasks/internal/driver", "modules/tasks/jetstream", "modules/tasks/redisbroker"}

// abilityAssertions lists, in the Go files of src (non-test, parsed, not
// type-checked), every type assertion or type switch case to the driver
// port's types or to an interface literal: how an engine discovers what
// a driver can do behind its back, where the driver's Capabilities say
// it as data.
func abilityAssertions(fset *token.FileSet, name string, src any) ([]string, error) {
	f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	port := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == driverPort {
			port = "driver"
			if imp.Name != nil {
				port = imp.Name.Name
			}
		}
	}
	ability := func(t ast.Expr) bool {
		switch t := t.(type) {
		case *ast.InterfaceType:
			return true
		case *ast.SelectorExpr:
			id, ok := t.X.(*ast.Ident)
			return ok && port != "" && id.Name == port
		}
		return false
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.TypeAssertExpr:
			if n.Type != nil && ability(n.Type) {
				out = append(out, fmt.Sprintf("%s: type assertion to %s", fset.Position(n.Pos()), exprString(n.Type)))
			}
		case *ast.TypeSwitchStmt:
			for _, c := range n.Body.List {
				for _, t := range c.(*ast.CaseClause).List {
					if ability(t) {
						out = append(out, fmt.Sprintf("%s: type switch case %s", fset.Position(t.Pos()), exprString(t)))
					}
				}
			}
		}
		return true
	})
	return out, nil
}

func exprString(e ast.Expr) string {
	if s, ok := e.(*ast.SelectorExpr); ok {
		if id, ok := s.X.(*ast.Ident); ok {
			return id.Name + "." + s.Sel.Name
		}
	}
	return "an interface literal"
}

// TestNoAbilityAssertions holds the task engine, and every package but
// the drivers, to reading a driver's abilities from its Capabilities.
func TestNoAbilityAssertions(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(filepath.Join(root, "modules", "tasks"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		for _, tree := range driverTrees {
			if under(tree, rel) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		checked++
		found, err := abilityAssertions(fset, path, nil)
		for _, f := range found {
			t.Errorf("%s: read the driver's Capabilities instead", f)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no Go file checked under modules/tasks")
	}
}

// TestAbilityAssertionsCatch shows the check finding each form it
// forbids, under any name the port is imported as, and passing the
// assertions it allows.
func TestAbilityAssertionsCatch(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		want      int
	}{
		{"a port type", `package p
import "` + driverPort + `"
func f(q driver.Queue) { _, _ = q.(driver.Transport) }`, 1},
		{"a renamed port", `package p
import port "` + driverPort + `"
func f(q port.Queue) { switch q.(type) { case port.Transport: } }`, 1},
		{"an interface literal", `package p
func f(q any) { _, _ = q.(interface{ Lease() int }) }`, 1},
		{"a concrete type, allowed", `package p
type m struct{}
func f(v any) { _ = v.(*m) }`, 0},
		{"another package's selector, allowed", `package p
import "errors"
func f(v any) { _ = v.(errors.Foo) }`, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			found, err := abilityAssertions(token.NewFileSet(), "p.go", tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if len(found) != tt.want {
				t.Errorf("found %q, want %d", found, tt.want)
			}
		})
	}
}
