package acttest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// The staged rollout example: stage pushes candidates and moves no tag,
// a verify job per candidate runs the repository's own check (here: the
// registry serves the candidate's manifest), and promote moves the tags;
// the plan travels between the jobs as an artifact, through GitHub's own
// artifact library and act's artifact server.
func TestRebaseStagedExample(t *testing.T) {
	needFixture(t)
	h := fx.Registry.Host
	run := h + "/gha-staged/run:latest"
	pushRunImage(t, run, "v1")
	apps := []string{h + "/gha-staged/a:latest", h + "/gha-staged/b:latest"}
	old := map[string]string{}
	fleet := "images:\n"
	for _, app := range apps {
		old[app] = buildApp(t, app, run)
		fleet += "  - image: " + app + "\n"
	}
	pushRunImage(t, run, "v2")
	r := newRepo(t, map[string]string{
		".github/workflows/rebase-staged.yml": example(t, "rebase-staged.yml", true),
		".github/cipack-fleet.yaml":           fleet,
		// The check: the candidate's manifest is in the registry.
		".github/verify-candidate.sh": "#!/bin/sh\nset -eu\nrepo=\"${1%@*}\"; digest=\"${1#*@}\"; path=\"${repo#*/}\"; host=\"${repo%%/*}\"\n" +
			"curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \"http://$host/v2/$path/manifests/$digest\"\necho \"verified $1\"\n",
	})
	if err := os.Chmod(filepath.Join(r.dir, ".github", "verify-candidate.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	artifacts := realArtifactActions(t)
	res := r.run(t, "rebase-staged.yml", "schedule",
		"--artifact-server-path", r.dir+"-artifacts", "--artifact-server-addr", "127.0.0.1", "--artifact-server-port", strconv.Itoa(port),
		"--local-repository", "actions/upload-artifact@v4="+filepath.Join(artifacts, "upload"),
		"--local-repository", "actions/download-artifact@v4="+filepath.Join(artifacts, "download"))
	if res.code != 0 {
		t.Fatalf("act exited %d\n%s", res.code, res.out)
	}
	if got := strings.Count(res.out, "| verified "+h); got != 2 {
		t.Errorf("%d candidates verified, want 2", got)
	}
	for _, app := range apps {
		now := testenv.MustHead(t, app).String()
		if now == old[app] {
			t.Errorf("%s was not promoted", app)
		}
		if !strings.Contains(res.out, "verified "+strings.TrimSuffix(app, ":latest")+"@"+now) {
			t.Errorf("%s was promoted to %s, which no verify job checked", app, now)
		}
	}
}
