package build

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cipack/cipack/internal/project"
)

// The app copy a build gets keeps an empty directory exclude does not
// name, as pack's does (see project.Descriptor.KeepEmptyDir).
func TestAppCopyKeepsEmptyDirs(t *testing.T) {
	app := t.TempDir()
	for _, d := range []string{"uploads", "logs"} {
		if err := os.Mkdir(filepath.Join(app, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(app, "logs", "old.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	desc := &project.Descriptor{Path: filepath.Join(app, "project.toml"), Exclude: []string{"*.log"}}
	dir, cleanup, err := prepareApp(t.TempDir(), app, desc, os.Getuid(), os.Getgid(), false, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	for _, d := range []string{"uploads", "logs"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s/ was dropped from the copy: %v", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "logs", "old.log")); err == nil {
		t.Error("an excluded file was copied")
	}
}
