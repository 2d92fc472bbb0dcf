package exit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// exitConstants reads the exit codes from exit.go's source, so that a code
// added there without a Table row or a troubleshooting section fails the
// tests below rather than a hand-kept list. It returns name by code.
func exitConstants(t *testing.T) map[int]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(thisDir(t), "exit.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[int]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			if len(v.Names) != 1 || len(v.Values) != 1 {
				t.Fatalf("exit.go: declare each exit code as NAME = NUMBER (at %s)", v.Names[0].Name)
			}
			lit, ok := v.Values[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.INT {
				t.Fatalf("exit.go: constant %s is not an integer literal", v.Names[0].Name)
			}
			n, err := strconv.Atoi(lit.Value)
			if err != nil {
				t.Fatalf("exit.go: constant %s: %v", v.Names[0].Name, err)
			}
			if prev, dup := codes[n]; dup {
				t.Fatalf("exit.go: %s and %s are both %d", prev, v.Names[0].Name, n)
			}
			codes[n] = v.Names[0].Name
		}
	}
	if len(codes) == 0 {
		t.Fatal("exit.go: no constants found")
	}
	return codes
}

func thisDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Dir(file)
}

func missing(codes map[int]string, have map[int]bool) []string {
	var out []string
	for n, name := range codes {
		if !have[n] {
			out = append(out, name+" ("+strconv.Itoa(n)+")")
		}
	}
	sort.Strings(out)
	return out
}

// Every constant declared in exit.go has a row in Table, which
// `cipack exit-codes` prints.
func TestTableCoversEveryDeclaredCode(t *testing.T) {
	codes := exitConstants(t)
	inTable := map[int]bool{}
	for _, r := range Table {
		inTable[r.Code] = true
		if _, ok := codes[r.Code]; !ok {
			t.Errorf("Table lists %d, which exit.go does not declare", r.Code)
		}
	}
	if m := missing(codes, inTable); len(m) > 0 {
		t.Errorf("exit.Table has no row for: %s", strings.Join(m, ", "))
	}
}

var (
	anyHeading  = regexp.MustCompile(`(?m)^## Exit code.*$`)
	codeHeading = regexp.MustCompile(`^## Exit code (\d+) — \S.*$`)
	whatToDo    = regexp.MustCompile(`(?m)^\*\*What to do\*\*: \S`)
)

// docs/troubleshooting.md has exactly one section per declared code,
// headed `## Exit code N — meaning`, none for a code that does not exist,
// and each says what the code means and, on a line starting with
// `**What to do**:`, what to do about it.
func TestTroubleshootingCoversEveryExitCode(t *testing.T) {
	codes := exitConstants(t)
	path := filepath.Join(thisDir(t), "..", "..", "docs", "troubleshooting.md")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	headings := anyHeading.FindAllStringIndex(doc, -1)
	seen := map[int]bool{}
	for i, h := range headings {
		line := doc[h[0]:h[1]]
		m := codeHeading.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("docs/troubleshooting.md: heading %q is not `## Exit code N — meaning`", line)
			continue
		}
		n, _ := strconv.Atoi(m[1])
		name, ok := codes[n]
		switch {
		case !ok:
			t.Errorf("docs/troubleshooting.md: section for exit code %d, which exit.go does not declare", n)
		case seen[n]:
			t.Errorf("docs/troubleshooting.md: exit code %d (%s) has more than one section", n, name)
		}
		seen[n] = true
		end := len(doc)
		if i+1 < len(headings) {
			end = headings[i+1][0]
		}
		// A section ends at the next exit-code heading, or at any other
		// level-2 heading after it.
		body := doc[h[1]:end]
		if j := strings.Index(body, "\n## "); j >= 0 {
			body = body[:j]
		}
		loc := whatToDo.FindStringIndex(body)
		if loc == nil {
			t.Errorf("docs/troubleshooting.md: exit code %d (%s) has no line starting with `**What to do**: `", n, name)
			continue
		}
		if meaning := strings.TrimSpace(body[:loc[0]]); len(meaning) < 40 {
			t.Errorf("docs/troubleshooting.md: exit code %d (%s) does not say what it means before **What to do**", n, name)
		}
	}
	if m := missing(codes, seen); len(m) > 0 {
		t.Errorf("docs/troubleshooting.md has no section for: %s", strings.Join(m, ", "))
	}
}
