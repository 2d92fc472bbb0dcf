package scratch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A relative TMPDIR (or base) still gives an absolute directory: the
// sandbox helper chdirs into its work dir and runc runs in its bundle, so
// a relative path would name another directory there (the helper failed
// "open w/root", exit 13).
func TestDirIsAbsoluteForARelativeTempDir(t *testing.T) {
	cwd := t.TempDir()
	t.Chdir(cwd)
	if err := os.Mkdir("tmp", 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", "tmp")
	for _, base := range []string{"", "tmp"} {
		d, err := Dir(base, "cipack-test-")
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(d) || !strings.HasPrefix(d, filepath.Join(cwd, "tmp")+"/") {
			t.Errorf("Dir(%q) = %q, want an absolute path under %s/tmp", base, d, cwd)
		}
	}
}
