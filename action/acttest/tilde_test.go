package acttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A cache-dir or sbom-dir input starting with ~ means the runner's home,
// as actions/cache and upload-artifact read it: the steps that save and
// restore the cache and cipack must name the same directory (a literal
// "~" under the workspace missed the cache every run and left a
// root-only layer store in the checkout).
func TestActionExpandsATildeInDirectoryInputs(t *testing.T) {
	a := loadAction(t, "action.yml")
	home, tmp := t.TempDir(), t.TempDir()
	stub := filepath.Join(tmp, "cipack")
	// The stub stands in for cipack: resolve prints a ref, build records
	// the directories it was given.
	script := "#!/bin/sh\n[ \"$1\" = resolve ] && { echo reg.example/b@sha256:0; exit 0; }\n" +
		"printf '%s\\n' \"$CIPACK_BUILDER_BLOBS\" \"$CIPACK_CACHE_DIR\" \"$CIPACK_SBOM_DIR\" > \"$RECORD\"\n"
	if err := os.WriteFile(stub, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(tmp, "output")
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "CIPACK_BIN=" + stub, "GITHUB_OUTPUT=" + out,
		"RUNNER_TEMP=" + tmp, "RECORD=" + filepath.Join(tmp, "record")}
	for _, s := range a.Runs.Steps {
		switch s.ID {
		case "cache-key":
			runStep(t, s.Run, append(env, "CACHE_DIR=~/.cache/cipack"))
		case "build":
			runStep(t, s.Run, append(env, "CACHE_DIR="+outputOf(t, out, "dir"), "SBOM_DIR=~/sbom"))
		}
	}
	if got := outputOf(t, out, "dir"); got != filepath.Join(home, ".cache/cipack") {
		t.Errorf("cache-key's dir output = %q, want %s/.cache/cipack", got, home)
	}
	rec, err := os.ReadFile(filepath.Join(tmp, "record"))
	if err != nil {
		t.Fatalf("the build step did not run cipack: %v", err)
	}
	want := []string{home + "/.cache/cipack/blobs", home + "/.cache/cipack/build", home + "/sbom"}
	if got := strings.Fields(string(rec)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("cipack got %q, want %q", got, want)
	}
}

func runStep(t *testing.T, script string, env []string) {
	t.Helper()
	cmd := exec.Command("sh", "-ec", script)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("step: %v\n%s", err, b)
	}
}

// outputOf is the last value of name in a GITHUB_OUTPUT file.
func outputOf(t *testing.T, file, name string) string {
	t.Helper()
	b, _ := os.ReadFile(file)
	v := ""
	for _, l := range strings.Split(string(b), "\n") {
		if k, val, ok := strings.Cut(l, "="); ok && k == name {
			v = val
		}
	}
	return v
}
