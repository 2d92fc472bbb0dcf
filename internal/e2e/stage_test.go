package e2e

import (
	"crypto/sha256"
	"encoding/hex"
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

	cmd := exec.Command(fx.Cipack, "rebase", "--promote", plan, "--promote-digest", fileDigest(t, plan), "--output", "json")
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

// A plan is a file that travels between jobs: a candidate it names that
// is not a rebase of the staged digest (another image pushed into the
// app's repository) is refused, and no tag moves.
func TestPromoteRefusesACandidateThatIsNotARebase(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "stage-tamper")
	fleet := "images:\n  - image: " + w.appA + "\n    tags: [" + w.appAStable + "]\n"
	pushRun(t, w.run, "v2", testenv.StackID)
	plan := filepath.Join(t.TempDir(), "plan.json")
	if _, code, stderr := cipackRebase(t, fleet, nil, "--stage", "--report-file", plan); code != 0 {
		t.Fatalf("stage: exit %d\n%s", code, stderr)
	}
	before := map[string]string{w.appA: testenv.MustHead(t, w.appA).String(), w.appAStable: testenv.MustHead(t, w.appAStable).String()}
	other, err := testenv.Push(t.Context(), strings.TrimSuffix(w.appA, ":latest")+":other", testenv.MustPull(t, w.plain))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	raw, _ := os.ReadFile(plan)
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, o := range doc["images"].([]any) {
		o.(map[string]any)["newDigest"] = other.String()
	}
	raw, _ = json.Marshal(doc)
	if err := os.WriteFile(plan, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fx.Cipack, "rebase", "--promote", plan, "--promote-digest", fileDigest(t, plan), "--output", "json")
	out, _ := cmd.Output()
	var promoted sweepReport
	if err := json.Unmarshal(out, &promoted); err != nil || cmd.ProcessState.ExitCode() != exit.SomeFailed {
		t.Fatalf("promote: exit %d, want %d\n%s", cmd.ProcessState.ExitCode(), exit.SomeFailed, out)
	}
	if v, reason, _, errText, _ := promoted.byImage(t, w.appA); v != "error" || reason != "NOT_A_REBASE" || !strings.Contains(errText, "nothing was moved") {
		t.Fatalf("app A: %s %s %q, want refused as NOT_A_REBASE", v, reason, errText)
	}
	for ref, d := range before {
		if testenv.MustHead(t, ref).String() != d {
			t.Fatalf("%s moved to a candidate that is not a rebase", ref)
		}
	}
}

// fileDigest is a plan's digest as the stage step outputs it
// (report-digest), for --promote-digest.
func fileDigest(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
