package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// A built image whose io.buildpacks.lifecycle.metadata is rewritten (as a
// buildpack's launch.toml labels can) to claim the run image as it is
// now, while its layers sit on the old one: `cipack rebase` reports a
// mismatch (exit 11), not up-to-date, and moves nothing.
func TestRebaseReportsAForgedRunImageLabel(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "forged-label")
	now := pushRun(t, w.run, "v2", testenv.StackID)
	rcf, err := testenv.MustPull(t, w.run).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	top := rcf.RootFS.DiffIDs[len(rcf.RootFS.DiffIDs)-1].String()
	img := testenv.MustPull(t, w.appA)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	var md map[string]any
	if err := json.Unmarshal([]byte(cf.Config.Labels["io.buildpacks.lifecycle.metadata"]), &md); err != nil {
		t.Fatal(err)
	}
	run := md["runImage"].(map[string]any)
	run["topLayer"], run["reference"] = top, strings.TrimSuffix(w.run, ":latest")+"@"+now.String()
	forged, _ := json.Marshal(md)
	cf.Config.Labels["io.buildpacks.lifecycle.metadata"] = string(forged)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimSuffix(w.appA, "/a:latest") + "/forged:latest"
	if _, err := testenv.Push(t.Context(), ref, img); err != nil {
		t.Fatal(err)
	}
	before := testenv.MustHead(t, ref).String()
	r, code, stderr := cipackRebase(t, "images:\n  - image: "+ref+"\n", nil)
	if code != exit.SomeFailed {
		t.Fatalf("rebase: exit %d, want %d\n%s", code, exit.SomeFailed, stderr)
	}
	if v, reason, _, errText, _ := r.byImage(t, ref); v != "error" || reason != "RUN_IMAGE_MISMATCH" || !strings.Contains(errText, "lifecycle") {
		t.Fatalf("forged label: %s %s %q, want a RUN_IMAGE_MISMATCH error", v, reason, errText)
	}
	if testenv.MustHead(t, ref).String() != before {
		t.Fatal("the image with a forged label moved")
	}
}

// The forged plan, end to end: between stage and promote the plan
// is edited to pin the run image to the old base by digest and to name
// the app's oldest build as the candidate (with its digest passed, as an
// attacker who also controls the job output would). Nothing moves, exit
// 11, and the error names the plan.
func TestPromoteRefusesAPlanThatPromotesTheOldestBuild(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "stage-downgrade")
	oldest := testenv.MustHead(t, w.appA).String()
	v1 := testenv.MustHead(t, w.run).String()
	fleet := "images:\n  - image: " + w.appA + "\n    tags: [" + w.appAStable + "]\n"
	pushRun(t, w.run, "v2", testenv.StackID)
	if _, code, stderr := cipackRebase(t, fleet, nil); code != 0 {
		t.Fatalf("rebase onto v2: exit %d\n%s", code, stderr)
	}
	pushRun(t, w.run, "v3", testenv.StackID)
	plan := filepath.Join(t.TempDir(), "plan.json")
	if _, code, stderr := cipackRebase(t, fleet, nil, "--stage", "--report-file", plan); code != 0 {
		t.Fatalf("stage: exit %d\n%s", code, stderr)
	}
	before := map[string]string{w.appA: testenv.MustHead(t, w.appA).String(), w.appAStable: testenv.MustHead(t, w.appAStable).String()}
	var doc map[string]any
	raw, _ := os.ReadFile(plan)
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, o := range doc["images"].([]any) {
		o.(map[string]any)["newDigest"] = oldest
		o.(map[string]any)["runImage"] = strings.TrimSuffix(w.run, ":latest") + "@" + v1
	}
	raw, _ = json.Marshal(doc)
	if err := os.WriteFile(plan, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fx.Cipack, "rebase", "--promote", plan, "--promote-digest", fileDigest(t, plan), "--output", "json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, _ := cmd.Output()
	if cmd.ProcessState.ExitCode() != exit.SomeFailed || !strings.Contains(stderr.String(), plan) {
		t.Fatalf("promote: exit %d, want %d naming %s\n%s\n%s", cmd.ProcessState.ExitCode(), exit.SomeFailed, plan, out, stderr.String())
	}
	var promoted sweepReport
	if err := json.Unmarshal(out, &promoted); err != nil {
		t.Fatal(err)
	}
	if v, reason, _, errText, _ := promoted.byImage(t, w.appA); v != "error" || reason != "NOT_A_REBASE" || !strings.Contains(errText, "nothing was moved") {
		t.Fatalf("app A: %s %s %q, want refused as NOT_A_REBASE", v, reason, errText)
	}
	for ref, d := range before {
		if got := testenv.MustHead(t, ref).String(); got != d {
			t.Fatalf("%s moved to %s (the oldest build is %s)", ref, got, oldest)
		}
	}
}

// A promote killed between two tags (simulated: latest already moved to
// the candidate), run again with the same plan, finishes the set.
func TestPromoteRunAgainFinishesTheSet(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "stage-resume")
	fleet := "images:\n  - image: " + w.appA + "\n    tags: [" + w.appAStable + "]\n"
	pushRun(t, w.run, "v2", testenv.StackID)
	plan := filepath.Join(t.TempDir(), "plan.json")
	r, code, stderr := cipackRebase(t, fleet, nil, "--stage", "--report-file", plan)
	if code != 0 {
		t.Fatalf("stage: exit %d\n%s", code, stderr)
	}
	_, _, _, _, candidate := r.byImage(t, w.appA)
	repo := strings.TrimSuffix(w.appA, ":latest")
	if _, err := testenv.Push(t.Context(), w.appA, testenv.MustPull(t, repo+"@"+candidate)); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(fx.Cipack, "rebase", "--promote", plan, "--promote-digest", fileDigest(t, plan)).CombinedOutput()
	if err != nil {
		t.Fatalf("promote again: %v\n%s", err, out)
	}
	for _, ref := range []string{w.appA, w.appAStable} {
		if got := testenv.MustHead(t, ref).String(); got != candidate {
			t.Fatalf("%s is at %s, want the candidate %s\n%s", ref, got, candidate, out)
		}
	}
}
