package project

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "project.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSchemas(t *testing.T) {
	v2 := write(t, `[_]
schema-version = "0.2"
id = "io.example.app"
name = "App"

[io.buildpacks]
exclude = ["*.log", "/secrets"]

[[io.buildpacks.group]]
id = "cipack-examples/shell"

[[io.buildpacks.build.env]]
name = "GREETING"
value = "from=project"

[[io.buildpacks.pre.group]]
id = "x/pre"
`)
	d, err := Load(v2, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Exclude, ",") != "*.log,/secrets" || len(d.Group) != 1 || d.Group[0].ID != "cipack-examples/shell" || strings.Join(d.Env, ",") != "GREETING=from=project" {
		t.Fatalf("0.2: %+v", d)
	}
	if strings.Join(d.Unsupported, ",") != "io.buildpacks.pre" {
		t.Fatalf("unsupported keys %v, want io.buildpacks.pre", d.Unsupported)
	}
	v1 := write(t, `[project]
id = "io.example.app"

[build]
include = ["app.sh"]

[[build.buildpacks]]
id = "cipack-examples/shell"
version = "0.0.1"

[[build.env]]
name = "A"
value = "1"
`)
	d, err = Load(v1, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(d.Include, ",") != "app.sh" || d.Group[0].Version != "0.0.1" || strings.Join(d.Env, ",") != "A=1" || len(d.Unsupported) != 0 {
		t.Fatalf("0.1: %+v", d)
	}
	if d, err := Load(filepath.Join(t.TempDir(), "none.toml"), false); d != nil || err != nil {
		t.Fatalf("a missing optional descriptor: %v %v", d, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.toml"), true); exit.Code(err) != exit.Usage {
		t.Fatalf("a missing --descriptor: %v", err)
	}
	broken := write(t, "[_]\nschema-version = \"0.2\"\n\n[io.buildpacks\nexclude = []\n")
	// The parser notices the unclosed table where line 4 ends.
	if _, err := Load(broken, false); exit.Code(err) != exit.Usage || !(strings.Contains(err.Error(), broken+":4") || strings.Contains(err.Error(), broken+":5")) {
		t.Fatalf("a broken file should name the file and the line: %v", err)
	}
}

func TestCopyAppliesIncludeAndExclude(t *testing.T) {
	src := t.TempDir()
	for _, f := range []string{"app.sh", "debug.log", "secrets/key", "src/a/b.log", "src/a/keep.txt", "node_modules/x/index.js"} {
		p := filepath.Join(src, f)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.WriteFile(p, []byte(f), 0o644)
	}
	list := func(dir string) string {
		var out []string
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, _ error) error {
			if !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				out = append(out, filepath.ToSlash(rel))
			}
			return nil
		})
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	ex := filepath.Join(t.TempDir(), "ex")
	if err := (&Descriptor{Exclude: []string{"*.log", "/secrets", "node_modules/"}}).Copy(src, ex); err != nil {
		t.Fatal(err)
	}
	if got := list(ex); got != "app.sh src/a/keep.txt" {
		t.Errorf("exclude: %s", got)
	}
	in := filepath.Join(t.TempDir(), "in")
	if err := (&Descriptor{Include: []string{"app.sh", "src/**/*.txt"}}).Copy(src, in); err != nil {
		t.Fatal(err)
	}
	if got := list(in); got != "app.sh src/a/keep.txt" {
		t.Errorf("include: %s", got)
	}
	if got := list(src); !strings.Contains(got, "debug.log") {
		t.Errorf("the checkout was changed: %s", got)
	}
}

// The filtered copy is made as root: a hard link to a file outside the
// app must not become a fresh, readable file in it.
func TestCopyLeavesHardLinksOut(t *testing.T) {
	src, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secret, []byte("root-only"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "app.sh"), []byte("echo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(secret, filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	d := &Descriptor{Exclude: []string{"*.log"}}
	dst := filepath.Join(t.TempDir(), "copy")
	if err := d.Copy(src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "link")); !os.IsNotExist(err) {
		t.Fatalf("the hard link was copied: %v", err)
	}
	if strings.Join(d.SkippedLinks, ",") != "link" {
		t.Fatalf("skipped %v", d.SkippedLinks)
	}
	if _, err := os.Stat(filepath.Join(dst, "app.sh")); err != nil {
		t.Fatal(err)
	}
}
