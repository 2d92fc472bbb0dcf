package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// The README's main job, run as a user runs it.
func TestDemoPrintsWhatTheAppPrints(t *testing.T) {
	needFixture(t)
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "go", "run", "./examples/demo")
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, stderr.String())
	}
	if got := string(out); got != "Hello from cipack! GREETING=hello=world\nbase: v1\n" {
		t.Fatalf("demo printed %q\nstderr:\n%s", got, stderr.String())
	}
}
