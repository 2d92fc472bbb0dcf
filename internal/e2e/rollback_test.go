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

// Rollback: a rebase leaves, next to the digest it moved the tags to, a
// record of the digest they held; `cipack rollback -c FLEET` moves the
// image's tag and the tags that moved with it back, and the rebased
// digest is still exactly what the rebase made (the record is a separate
// artifact). A tag someone moved since is reported, not rolled back.
func TestRollbackRestoresThePreviousDigests(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "rollback")
	fleet := "images:\n  - image: " + w.appA + "\n    tags: [" + w.appAStable + "]\n  - image: " + w.appB + "\n"
	before := map[string]string{}
	for _, ref := range []string{w.appA, w.appAStable, w.appB} {
		before[ref] = testenv.MustHead(t, ref).String()
	}
	pushRun(t, w.run, "v2", testenv.StackID)
	r, code, stderr := cipackRebase(t, fleet, nil)
	if code != 0 {
		t.Fatalf("rebase: exit %d\n%s", code, stderr)
	}
	_, _, _, _, rebasedA := r.byImage(t, w.appA)
	_, _, _, _, rebasedB := r.byImage(t, w.appB)
	if rebasedA == "" || rebasedB == "" {
		t.Fatalf("the rebase moved nothing: %+v", r)
	}
	// Someone pushes B's tag after the rebase: its rollback is refused.
	if _, err := testenv.Push(t.Context(), w.appB, testenv.MustPull(t, w.plain)); err != nil {
		t.Fatal(err)
	}
	pushedB := testenv.MustHead(t, w.appB).String()

	out, _ := exec.Command(fx.Cipack, "rollback", "--config", writeFleet(t, fleet), "--output", "json").Output()
	var rb sweepReport
	if err := json.Unmarshal(out, &rb); err != nil {
		t.Fatalf("rollback printed no report: %v\n%s", err, out)
	}
	for _, ref := range []string{w.appA, w.appAStable} {
		if got := testenv.MustHead(t, ref).String(); got != before[ref] {
			t.Errorf("%s is at %s after the rollback, want %s", ref, got, before[ref])
		}
	}
	if testenv.MustHead(t, w.appB).String() != pushedB {
		t.Fatal("the rollback overwrote a tag someone pushed")
	}
	if v, _, _, errText, _ := rb.byImage(t, w.appB); v != "error" || !strings.Contains(errText, "no record") {
		t.Errorf("app B: %s %q, want an error saying cipack has no record for the pushed digest", v, errText)
	}
	// The rebased digest is untouched: the record is beside it.
	if d := testenv.MustHead(t, strings.TrimSuffix(w.appA, ":latest")+"@"+rebasedA).String(); d != rebasedA {
		t.Fatalf("the rebased image's digest changed: %s", d)
	}
	// The rollback was recorded too: rolling back again undoes it.
	if out, err := exec.Command(fx.Cipack, "rollback", w.appA).CombinedOutput(); err != nil {
		t.Fatalf("undo the rollback: %v\n%s", err, out)
	}
	for _, ref := range []string{w.appA, w.appAStable} {
		if got := testenv.MustHead(t, ref).String(); got != rebasedA {
			t.Errorf("%s is at %s after undoing the rollback, want the rebased %s", ref, got, rebasedA)
		}
	}
	// A digest cipack never moved a tag to has no record: exit 11.
	cmd := exec.Command(fx.Cipack, "rollback", w.plain)
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != exit.SomeFailed {
		t.Fatalf("rollback without a record: exit %d (%v), want %d", cmd.ProcessState.ExitCode(), err, exit.SomeFailed)
	}
}

func writeFleet(t *testing.T, fleet string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(p, []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
