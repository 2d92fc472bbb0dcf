package safefs_test

import (
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"github.com/cipack/cipack/internal/safefs"
)

// FindUnsafe lists links and special files without following links, down
// to the depth asked, and a missing root has nothing unsafe.
func TestFindUnsafe(t *testing.T) {
	root := t.TempDir()
	out := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "bp", "layer", "deep"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "group.toml"), nil, 0o644))
	must(t, os.Symlink(out, filepath.Join(root, "bp", "linked")))
	must(t, os.Symlink(out, filepath.Join(root, "bp", "layer", "deep", "fine-in-a-layer")))
	must(t, syscall.Mkfifo(filepath.Join(root, "report.toml"), 0o644))
	// A link to a directory is not walked into.
	must(t, os.WriteFile(filepath.Join(out, "x"), nil, 0o644))
	must(t, os.Symlink(out, filepath.Join(root, "top")))

	got, err := safefs.FindUnsafe(root, 2, 100)
	must(t, err)
	want := []safefs.Unsafe{{Rel: "bp/linked", Kind: "a symbolic link"}, {Rel: "report.toml", Kind: "a named pipe (FIFO)"}, {Rel: "top", Kind: "a symbolic link"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("depth 2: got %v, want %v", got, want)
	}
	all, err := safefs.FindUnsafe(root, 0, 100)
	must(t, err)
	if len(all) != 4 || all[0].Rel != "bp/layer/deep/fine-in-a-layer" {
		t.Errorf("no depth limit: got %v", all)
	}
	if _, err := safefs.FindUnsafe(root, 0, 3); err == nil {
		t.Errorf("a tree over the entry bound was walked")
	}
	if got, err := safefs.FindUnsafe(filepath.Join(root, "absent"), 0, 10); err != nil || got != nil {
		t.Errorf("missing root: %v, %v", got, err)
	}
}
