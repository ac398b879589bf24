package racetest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestMakefileRunsEverySlowTest keeps the promise SkipSlow's message
// makes: every test that skips under -race is named in one of the
// Makefile's slow lists, on a line that runs its package, so make test
// leaves none out. A slow list naming a test that no longer skips is
// reported too.
func TestMakefileRunsEverySlowTest(t *testing.T) {
	root := filepath.Join("..", "..")
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	// SLOW_X := ^(A|B)$$ and, in the test recipe, -run '$(SLOW_X)' ./pkg ...
	lists := map[string]*regexp.Regexp{}
	for _, m := range regexp.MustCompile(`(?m)^(SLOW_\w+)\s*:=\s*(\S+)$`).FindAllStringSubmatch(string(mk), -1) {
		lists[m[1]] = regexp.MustCompile(strings.ReplaceAll(m[2], "$$", "$"))
	}
	type run struct {
		re   *regexp.Regexp
		list string
		pkgs []string
	}
	var runs []run
	for _, m := range regexp.MustCompile(`(?m)-run '\$\((SLOW_\w+)\)'((?: \./\S+)+)\s*$`).FindAllStringSubmatch(string(mk), -1) {
		re, ok := lists[m[1]]
		if !ok {
			t.Fatalf("Makefile runs $(%s), which it does not define", m[1])
		}
		var pkgs []string
		for p := range strings.FieldsSeq(m[2]) {
			pkgs = append(pkgs, filepath.Clean(p))
		}
		runs = append(runs, run{re, m[1], pkgs})
	}
	if len(runs) == 0 {
		t.Fatal("found no `go test -run '$(SLOW_...)' ./pkg` line in the Makefile")
	}

	slow := map[string]bool{} // "pkgdir TestName"
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Body == nil {
				continue
			}
			if callsSkipSlow(fn.Body) {
				slow[rel+" "+fn.Name.Name] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(slow) == 0 {
		t.Fatal("found no test that calls SkipSlow; the walk is broken")
	}
	for key := range slow {
		dir, name, _ := strings.Cut(key, " ")
		covered := slices.ContainsFunc(runs, func(r run) bool {
			return r.re.MatchString(name) && slices.Contains(r.pkgs, dir)
		})
		if !covered {
			t.Errorf("%s (./%s) skips under -race, but no slow list in the Makefile runs it in its package: add it to SLOW_PKGS or SLOW_CMD", name, dir)
		}
	}
	for _, r := range runs {
		for _, name := range namesIn(r.re.String()) {
			found := false
			for _, p := range r.pkgs {
				found = found || slow[p+" "+name]
			}
			if !found {
				t.Errorf("Makefile's %s names %s, which no test in %v that skips under -race is called", r.list, name, r.pkgs)
			}
		}
	}
}

// callsSkipSlow reports whether body calls racetest.SkipSlow or a
// package's own skipSlow wrapper of it.
func callsSkipSlow(body *ast.BlockStmt) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return !found
		}
		switch f := call.Fun.(type) {
		case *ast.SelectorExpr:
			if x, ok := f.X.(*ast.Ident); ok && x.Name == "racetest" && f.Sel.Name == "SkipSlow" {
				found = true
			}
		case *ast.Ident:
			if f.Name == "skipSlow" {
				found = true
			}
		}
		return !found
	})
	return found
}

// namesIn lists the alternatives of a ^(A|B|C)$ pattern.
func namesIn(re string) []string {
	re = strings.TrimSuffix(strings.TrimPrefix(re, "^("), ")$")
	return strings.Split(re, "|")
}
