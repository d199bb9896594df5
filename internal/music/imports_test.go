package music_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ioPackages are standard-library packages that do I/O or escape the type
// system; the rules must not need them.
var ioPackages = map[string]bool{
	"net": true, "net/http": true, "os": true, "os/exec": true, "io/fs": true,
	"syscall": true, "unsafe": true, "plugin": true, "database/sql": true,
}

// TestImports keeps the package pure: standard library only (no path whose
// first element has a dot, which rules out every module including this
// project's), and no I/O packages. It parses every non-test .go file, whatever
// its build tags, so a file for another platform cannot slip through.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(path, "/")
			if strings.Contains(first, ".") {
				t.Errorf("%s imports %q: internal/music may import only the standard library", fset.Position(imp.Pos()), path)
			}
			if ioPackages[path] || path == "C" {
				t.Errorf("%s imports %q: internal/music must not do I/O", fset.Position(imp.Pos()), path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files found; is the test running in the package directory?")
	}
}
