package project

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestExcludeAgreesWithGit holds exclude's patterns to git's own
// answer: the same tree, the same lines in a .gitignore, and the files
// `git ls-files --others --exclude-standard` keeps must be the files
// the filter keeps.
func TestExcludeAgreesWithGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed to check exclude against git's rules (make setup installs it)")
	}
	files := []string{"main.go", "README", "app.log", "keep.log", "src/a.go", "src/a.txt", "src/deep/b.go", "src/deep/c.log",
		"build/out.bin", "build/keep", "docs/a.md", "docs/keep/b.md", "vendor/x/y.go", "test/data.txt", "a/b/c/d.txt"}
	for _, lines := range [][]string{
		{"*.log", "!keep.log"},
		{"*", "!*/", "!*.go"},
		{"build/", "!build/keep"},
		{"docs/*", "!docs/keep/"},
		{"/src/deep", "*.txt"},
		{"**/c", "vendor/"},
		{"src/**/*.go", "!src/deep/**"},
		{"a/**/d.txt", "test"},
		{"*", "!src/", "!src/*.go"},
		{"/main.go", "**/keep", "docs/**/b.md"},
		{"*.log", "src/", "!**/keep.log"},
		{"build", "!build/keep", "[ab]*"},
	} {
		t.Run(strings.Join(lines, " "), func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			git := func(args ...string) string {
				cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
				cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("git %v: %v", args, err)
				}
				return string(out)
			}
			git("init", "-q")
			if err := os.WriteFile(filepath.Join(dir, ".git", "info", "exclude"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			want := strings.Fields(git("ls-files", "--others", "--exclude-standard"))
			filter := (&Descriptor{Exclude: lines}).Filter()
			var got []string
			for _, f := range files {
				parts := strings.Split(f, "/")
				kept := true
				for i := 1; i <= len(parts) && kept; i++ {
					kept = filter(strings.Join(parts[:i], "/"), i < len(parts))
				}
				if kept {
					got = append(got, f)
				}
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("exclude %q keeps %v; git keeps %v", lines, got, want)
			}
		})
	}
}
