package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/testenv"
)

var fx *testenv.Fixture

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testenv.RunTests(m, "e2e", &fx, nil))
}

func needFixture(t testing.TB) {
	t.Helper()
	if fx == nil {
		t.Skip("end-to-end tests are skipped in -short mode")
	}
}

// buildResult is cipack's --output json.
type buildResult struct {
	Name        string   `json:"name"`
	Image       string   `json:"image"`
	Digest      string   `json:"digest"`
	ImageRef    string   `json:"imageRef"`
	Tags        []string `json:"tags"`
	PlatformAPI string   `json:"platformAPI"`
	Buildpacks  []struct {
		ID, Version string
	} `json:"buildpacks"`
}

type run struct {
	stdout, stderr string
	code           int
}

// cipackBuild runs `cipack build` in the builder sandbox for the example
// app in a fresh workspace and layers dir.
func cipackBuild(t testing.TB, name string, env []string, args ...string) run {
	t.Helper()
	return cipackBuildIn(t, workspace(t, name), env, args...)
}

// cipackBuildIn is cipackBuild with the mounts given (another builder, a
// changed workspace).
func cipackBuildIn(t testing.TB, m testenv.Mounts, env []string, args ...string) run {
	t.Helper()
	cmd := fx.CipackBuild(context.Background(), m, args...)
	cmd.Env = append(cmd.Env, env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := run{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run cipack: %v", err)
	}
	return r
}

func workspace(t testing.TB, name string) testenv.Mounts {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	m, err := fx.Workspace(filepath.Join(root, "examples", "app"), name+"-"+randSuffix())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var counter int

func randSuffix() string { counter++; return fmt.Sprintf("%d-%d", os.Getpid(), counter) }

func mustJSON(t testing.TB, s string) buildResult {
	t.Helper()
	var r buildResult
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("stdout is not the JSON result: %v\n%s", err, s)
	}
	return r
}

// tags lists a repository's tags; a repository that does not exist has none.
func tags(t testing.TB, repo string) []string {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	list, err := remote.List(r)
	if err != nil {
		if strings.Contains(err.Error(), "NAME_UNKNOWN") || strings.Contains(err.Error(), "404") {
			return nil
		}
		t.Fatalf("list %s: %v", repo, err)
	}
	return list
}
