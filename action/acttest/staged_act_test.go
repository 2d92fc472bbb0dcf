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
// artifact library and act's artifact server, and its digest as a job
// output.
func TestRebaseStagedExample(t *testing.T) {
	apps, old, res := runStagedExample(t, "gha-staged", nil)
	if res.code != 0 {
		t.Fatalf("act exited %d\n%s", res.code, res.out)
	}
	if got := strings.Count(res.out, "| verified "+fx.Registry.Host); got != 2 {
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

// A plan changed on its way to the promote job (here by a step that
// appends to it after the download) is refused: its digest is not the
// one the stage job output, and no tag moves.
func TestRebaseStagedExampleRefusesAChangedPlan(t *testing.T) {
	tamper := func(wf string) string {
		const after = "          path: plan\n"
		if !strings.Contains(wf, after) {
			t.Fatal("the example has no plan download step to tamper after")
		}
		return strings.Replace(wf, after, after+"      - run: echo ' ' >> plan/rebase-plan/cipack-rebase-report.json\n", 1)
	}
	apps, old, res := runStagedExample(t, "gha-staged-tampered", tamper)
	if res.code == 0 || !strings.Contains(res.out, "not the staged plan sha256:") {
		t.Fatalf("a changed plan was promoted (act exit %d)\n%s", res.code, res.out)
	}
	for _, app := range apps {
		if now := testenv.MustHead(t, app).String(); now != old[app] {
			t.Errorf("%s moved to %s on a changed plan", app, now)
		}
	}
}

// runStagedExample builds two apps on a run image, moves the run image and
// runs the example (changed by edit, when given) with act.
func runStagedExample(t *testing.T, repo string, edit func(string) string) ([]string, map[string]string, actRun) {
	needFixture(t)
	h := fx.Registry.Host
	run := h + "/" + repo + "/run:latest"
	pushRunImage(t, run, "v1")
	apps := []string{h + "/" + repo + "/a:latest", h + "/" + repo + "/b:latest"}
	old := map[string]string{}
	fleet := "images:\n"
	for _, app := range apps {
		old[app] = buildApp(t, app, run)
		fleet += "  - image: " + app + "\n"
	}
	pushRunImage(t, run, "v2")
	wf := example(t, "rebase-staged.yml", true)
	if edit != nil {
		wf = edit(wf)
	}
	r := newRepo(t, map[string]string{
		".github/workflows/rebase-staged.yml": wf,
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
	return apps, old, res
}
