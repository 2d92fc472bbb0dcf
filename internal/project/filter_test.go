package project

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The include/exclude patterns are gitignore lines with git's semantics.
func TestFilterIsGitignore(t *testing.T) {
	type path struct {
		rel   string
		isDir bool
		kept  bool
	}
	for _, tc := range []struct {
		name             string
		include, exclude []string
		paths            []path
	}{
		{"negation", nil, []string{"*.log", "!keep.log"}, []path{
			{"debug.log", false, false}, {"sub/x.log", false, false}, {"keep.log", false, true},
			{"sub/keep.log", false, true}, {"app.sh", false, true}}},
		{"last match wins", nil, []string{"!keep.log", "*.log"}, []path{{"keep.log", false, false}}},
		{"dir only", nil, []string{"build/"}, []path{
			{"build", true, false}, {"src/build", true, false}, {"src/build/x", false, false},
			{"build", false, true}, {"src/build", false, true}}},
		{"anchored", nil, []string{"/secrets", "docs/*.md"}, []path{
			{"secrets", true, false}, {"secrets/key", false, false}, {"src/secrets", true, true},
			{"docs/a.md", false, false}, {"src/docs/a.md", false, true}, {"docs/sub/a.md", false, true}}},
		{"double star", nil, []string{"**/tmp", "a/**/b", "logs/**"}, []path{
			{"tmp", true, false}, {"x/y/tmp", false, false}, {"a/b", false, false}, {"a/x/y/b", false, false},
			{"c/a/b", false, true}, {"logs/x/y", false, false}, {"logs.txt", false, true}}},
		{"everything but", nil, []string{"*", "!*.go"}, []path{
			{"main.go", false, true}, {"README", false, false}, {"src", true, false}, {"src/a.go", false, false}}},
		// As git: "!*/" re-includes directories, not the files in them
		// (go-git's Matcher alone would keep src/a.txt).
		{"a negated directory does not re-include its files", nil, []string{"*", "!*/", "!*.go"}, []path{
			{"main.go", false, true}, {"README", false, false}, {"src", true, true},
			{"src/a.go", false, true}, {"src/a.txt", false, false}}},
		{"anchored patterns match the path, not its parent", nil, []string{"docs/*", "!docs/keep/"}, []path{
			{"docs/a.md", false, false}, {"docs/keep", true, true}, {"docs/keep/b.md", false, true}}},
		// As in git: nothing under an excluded directory comes back.
		{"no re-include under an excluded dir", nil, []string{"build/", "!build/keep"}, []path{
			{"build", true, false}, {"build/keep", false, false}}},
		{"comments, blanks, escapes", nil, []string{"# a comment", "", "  ", `\#file`, `\!bang`}, []path{
			{"# a comment", false, true}, {"#file", false, false}, {"!bang", false, false}, {"file", false, true}}},

		{"include a dir", []string{"src/"}, nil, []path{
			{"src/a/b.go", false, true}, {"src", true, true}, {"app.sh", false, false},
			{"other", true, true}, {"other/src", false, false}}},
		{"include by name", []string{"*.go", "!*_test.go"}, nil, []path{
			{"a/b.go", false, true}, {"a/b.txt", false, false}, {"a/b_test.go", false, false}}},
		{"include anchored", []string{"/app.sh", "cmd/*/main.go"}, nil, []path{
			{"app.sh", false, true}, {"sub/app.sh", false, false},
			{"cmd/x/main.go", false, true}, {"cmd/x/y/main.go", false, false}}},
		// As in git, a matched directory takes its whole subtree (pack,
		// matching whole paths, would leave src/test out).
		{"include under an included dir", []string{"src/", "!src/test/"}, nil, []path{
			{"src/test/x.go", false, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keep := (&Descriptor{Include: tc.include, Exclude: tc.exclude}).Filter()
			for _, p := range tc.paths {
				if got := keep(p.rel, p.isDir); got != p.kept {
					t.Errorf("%s (dir %v): kept %v, want %v", p.rel, p.isDir, got, p.kept)
				}
			}
		})
	}
	if (&Descriptor{}).Filter() != nil || (*Descriptor)(nil).Filter() != nil {
		t.Error("a descriptor without include or exclude filters nothing")
	}
}

func tree(t *testing.T, files ...string) string {
	t.Helper()
	src := t.TempDir()
	for _, f := range files {
		p := filepath.Join(src, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// list is the files and directories under dir.
func list(dir string) string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, _ error) error {
		if rel, _ := filepath.Rel(dir, p); rel != "." {
			if d.IsDir() {
				rel += "/"
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, " ")
}

func TestCopyAppliesIncludeAndExclude(t *testing.T) {
	src := tree(t, "app.sh", "debug.log", "keep.log", "secrets/key", "src/a/b.log", "src/a/keep.txt", "node_modules/x/index.js")
	for _, tc := range []struct {
		d    Descriptor
		want string
	}{
		{Descriptor{Exclude: []string{"*.log", "/secrets", "node_modules/"}}, "app.sh src/ src/a/ src/a/keep.txt"},
		{Descriptor{Exclude: []string{"*.log", "!keep.log"}}, "app.sh keep.log node_modules/ node_modules/x/ node_modules/x/index.js secrets/ secrets/key src/ src/a/ src/a/keep.txt"},
		{Descriptor{Include: []string{"app.sh", "src/**/*.txt"}}, "app.sh src/ src/a/ src/a/keep.txt"},
		// Directories left empty by include are not made.
		{Descriptor{Include: []string{"src/"}}, "src/ src/a/ src/a/b.log src/a/keep.txt"},
	} {
		dst := filepath.Join(t.TempDir(), "copy")
		if err := tc.d.Copy(src, dst); err != nil {
			t.Fatal(err)
		}
		if got := list(dst); got != tc.want {
			t.Errorf("include %v exclude %v:\n got %s\nwant %s", tc.d.Include, tc.d.Exclude, got, tc.want)
		}
	}
	if got := list(src); !strings.Contains(got, "debug.log") {
		t.Errorf("the checkout was changed: %s", got)
	}
}

// An empty directory the patterns keep is kept, as pack keeps it (its
// archive writes every path its filter accepts, directories too): with
// exclude, every directory not excluded, even one left empty by it; with
// include, those include names. One include does not name is not made,
// so its name does not reach the build.
func TestCopyKeepsEmptyDirsAsPack(t *testing.T) {
	src := tree(t, "app.sh", "logs/a.log", "src/main.go")
	for _, d := range []string{"empty", "src/empty", "other/empty"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		d    Descriptor
		want string
	}{
		{Descriptor{Exclude: []string{"*.log"}}, "app.sh empty/ logs/ other/ other/empty/ src/ src/empty/ src/main.go"},
		{Descriptor{Exclude: []string{"other/", "/empty"}}, "app.sh logs/ logs/a.log src/ src/empty/ src/main.go"},
		{Descriptor{Include: []string{"src/"}}, "src/ src/empty/ src/main.go"},
		{Descriptor{Include: []string{"*.go", "other/empty/"}}, "other/ other/empty/ src/ src/main.go"},
		{Descriptor{Include: []string{"*.go"}}, "src/ src/main.go"},
	} {
		dst := filepath.Join(t.TempDir(), "copy")
		if err := tc.d.Copy(src, dst); err != nil {
			t.Fatal(err)
		}
		if got := list(dst); got != tc.want {
			t.Errorf("include %v exclude %v:\n got %s\nwant %s", tc.d.Include, tc.d.Exclude, got, tc.want)
		}
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
