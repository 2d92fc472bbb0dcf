package build

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// The app copied onto a full temp dir is exit 13 naming the temp dir and
// saying to free space there, not a --path problem (exit 2): the app is
// fine, the disk is not.
func TestAppCopyOnFullDiskNamesTheDisk(t *testing.T) {
	testenv.NeedRoot(t)
	tmp := testenv.Tmpfs(t, "1M")
	app := t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "big"), make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := prepareApp(tmp, app, nil, 65534, 65534, true, io.Discard)
	if exit.Code(err) != exit.Sandbox || !strings.Contains(err.Error(), "free space on the filesystem holding "+tmp) || strings.Contains(err.Error(), "--path") {
		t.Fatalf("err = %v (exit %d), want exit %d naming %s", err, exit.Code(err), exit.Sandbox, tmp)
	}
	if es, _ := os.ReadDir(tmp); len(es) != 0 {
		t.Fatalf("the partial copy was left in %s: %v", tmp, es)
	}
}

// A full disk under the platform dir, a write no code path names, is exit
// 13 where the CLI turns the error into a code (exit.Code, exit.Resolve),
// naming the file it could not write: it was exit 1.
func TestPlatformDirOnFullDiskIsExit13(t *testing.T) {
	testenv.NeedRoot(t)
	tmp := testenv.Tmpfs(t, "64k")
	_, err := writePlatformDir(tmp, []string{"BIG=" + strings.Repeat("x", 128<<10)}, 65534, 65534, true)
	err = exit.Resolve(err)
	if exit.Code(err) != exit.Sandbox || !strings.Contains(err.Error(), "free space on the filesystem holding "+tmp+"/"+platformPrefix) {
		t.Fatalf("err = %v (exit %d), want exit %d naming the file under %s", err, exit.Code(err), exit.Sandbox, tmp)
	}
}
