package exit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docs/troubleshooting.md has one section per exit code declared in
// exit.go — read from the source, so a new code without a page fails
// here — each with a "What to do" paragraph, and none for a code that
// does not exist.
func TestTroubleshootingCoversEveryExitCode(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "exit.go", nil, 0)
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
			lit, ok := v.Values[0].(*ast.BasicLit)
			if !ok {
				t.Fatalf("constant %s is not a literal", v.Names[0])
			}
			n, _ := strconv.Atoi(lit.Value)
			codes[n] = v.Names[0].Name
		}
	}
	raw, err := os.ReadFile("../../docs/troubleshooting.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := regexp.MustCompile(`(?m)^## Exit code (\d+) — .+$`).FindAllStringSubmatchIndex(string(raw), -1)
	seen := map[int]bool{}
	for i, m := range sections {
		n, _ := strconv.Atoi(string(raw[m[2]:m[3]]))
		if _, ok := codes[n]; !ok || seen[n] {
			t.Errorf("section for exit code %d: no such code, or twice", n)
		}
		seen[n] = true
		end := len(raw)
		if i+1 < len(sections) {
			end = sections[i+1][0]
		}
		if body := string(raw[m[1]:end]); !strings.Contains(body, "**What to do**") || len(strings.TrimSpace(body)) < 80 {
			t.Errorf("exit code %d: the section needs what it means and a **What to do** paragraph", n)
		}
	}
	for n, name := range codes {
		if !seen[n] {
			t.Errorf("docs/troubleshooting.md has no section for exit code %d (%s)", n, name)
		}
	}
}
