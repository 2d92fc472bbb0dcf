package creator

import (
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

// A sandbox helper (cipack's own binary) that cannot be started is
// cipack's failure, exit 13 naming the helper, not the builder's (exit
// 6): the builder's lifecycle never ran.
func TestAHelperThatCannotStartIsCipacksFailure(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "cipack")
	r := &Runner{Log: io.Discard, Wrap: func(Invocation, []string) (*exec.Cmd, func(int) error, error) {
		return exec.Command(missing, "__sandbox"), func(int) error { return nil }, nil
	}}
	_, err := r.RunPhases(context.Background(), []Invocation{{Path: "/cnb/lifecycle/detector", Phase: "detect"}})
	if exit.Code(err) != exit.Sandbox {
		t.Fatalf("exit %d, want %d (sandbox): %v", exit.Code(err), exit.Sandbox, err)
	}
	for _, want := range []string{"sandbox helper " + missing, "detect phase", "no such file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}
