package exit_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// A full disk that no code path named (a raw *PathError from any write)
// is exit 13, and Resolve, which the CLI applies before printing, names
// the path from the *PathError; a named error keeps its own code.
func TestUnnamedFullDiskIsSandbox(t *testing.T) {
	testenv.NeedRoot(t)
	dir := testenv.Tmpfs(t, "64k")
	p := filepath.Join(dir, "big")
	werr := os.WriteFile(p, make([]byte, 128<<10), 0o644)
	if !exit.IsNoSpace(werr) {
		t.Fatalf("writing past the tmpfs: %v", werr)
	}
	if got := exit.Code(werr); got != exit.Sandbox {
		t.Fatalf("Code = %d, want %d", got, exit.Sandbox)
	}
	err := exit.Resolve(werr)
	if exit.Code(err) != exit.Sandbox || !strings.HasPrefix(err.Error(), p+": disk full: ") || !strings.Contains(err.Error(), "free space on the filesystem holding "+p) {
		t.Fatalf("Resolve = %v", err)
	}
	named := exit.New(exit.Usage, "--report-file", werr, "")
	if exit.Resolve(named) != error(named) || exit.Code(named) != exit.Usage {
		t.Fatalf("a named error was changed: %v", exit.Resolve(named))
	}
}
