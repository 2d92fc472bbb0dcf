package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// Staged rollout: --stage pushes the rebased images by digest and moves
// no tag; the candidates run (the verify step); --promote moves each
// image's tags to its candidate, except an image one of whose tags
// someone moved in between, which is reported and left alone.
func TestStageThenPromoteMovesOnlyUntouchedTags(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "stage")
	fleet := "images:\n  - image: " + w.appA + "\n    tags: [" + w.appAStable + "]\n  - image: " + w.appB + "\n"
	before := map[string]string{}
	for _, ref := range []string{w.appA, w.appAStable, w.appB} {
		before[ref] = testenv.MustHead(t, ref).String()
	}
	pushRun(t, w.run, "v2", testenv.StackID)
	plan := filepath.Join(t.TempDir(), "plan.json")
	r, code, stderr := cipackRebase(t, fleet, nil, "--stage", "--report-file", plan)
	if code != 0 {
		t.Fatalf("stage: exit %d\n%s", code, stderr)
	}
	for ref, d := range before {
		if testenv.MustHead(t, ref).String() != d {
			t.Fatalf("--stage moved %s", ref)
		}
	}
	candidate := map[string]string{}
	for _, o := range r.Images {
		if o.Verdict != "rebase" || o.NewDigest == "" {
			t.Fatalf("%s: %s with candidate %q, want a staged rebase", o.Image, o.Verdict, o.NewDigest)
		}
		candidate[o.Image] = o.NewDigest
		// The verify step: the candidate runs, on the new base.
		ref := strings.TrimSuffix(o.Image, ":latest") + "@" + o.NewDigest
		out, err := testenv.RunImageProcess(t.Context(), ref, "web", filepath.Join(fx.Dir, "stage-run-"+randSuffix()))
		if err != nil || !strings.Contains(out, "base: v2") {
			t.Fatalf("candidate %s printed %q (%v)", ref, out, err)
		}
	}
	// Someone pushes app B's tag between staging and promotion.
	img := testenv.MustPull(t, w.plain)
	if _, err := testenv.Push(t.Context(), w.appB, img); err != nil {
		t.Fatal(err)
	}
	pushedB := testenv.MustHead(t, w.appB).String()

	cmd := exec.Command(fx.Cipack, "rebase", "--promote", plan, "--output", "json")
	out, _ := cmd.Output()
	if cmd.ProcessState.ExitCode() != exit.SomeFailed {
		t.Fatalf("promote: exit %d, want %d (one image refused)\n%s", cmd.ProcessState.ExitCode(), exit.SomeFailed, out)
	}
	var promoted sweepReport
	if err := json.Unmarshal(out, &promoted); err != nil {
		t.Fatal(err)
	}
	if v, _, _, errText, _ := promoted.byImage(t, w.appB); v != "error" || !strings.Contains(errText, "not overwritten") {
		t.Fatalf("app B: %s %q, want refused", v, errText)
	}
	if testenv.MustHead(t, w.appB).String() != pushedB {
		t.Fatal("--promote overwrote a tag someone moved after staging")
	}
	for _, ref := range []string{w.appA, w.appAStable} {
		if got := testenv.MustHead(t, ref).String(); got != candidate[w.appA] {
			t.Fatalf("%s is at %s, want the candidate %s", ref, got, candidate[w.appA])
		}
	}
	_ = os.Remove(plan)
}
