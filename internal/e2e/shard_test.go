package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

// A fleet swept in shards, for real: after the run image moved, shards
// 1/3, 2/3 and 3/3 each rebase only their part, together every image
// once, and --merge-reports gives the verdicts one sweep would have.
func TestRebaseShardsCoverTheFleetOnce(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "shards")
	fleet := "defaults:\n  builder: " + fx.BuilderImage + "\nimages:\n"
	all := []string{w.appA, w.appB, w.plain, w.noRebase}
	for _, img := range all {
		fleet += "  - image: " + img + "\n"
	}
	pushRun(t, w.run, "v2", "")
	dir := t.TempDir()
	var files []string
	var swept []string
	for _, k := range []string{"1/3", "2/3", "3/3"} {
		file := filepath.Join(dir, "report-"+k[:1]+".json")
		r, code, stderr := cipackRebase(t, fleet, nil, "--shard", k, "--report-file", file)
		if code != 0 {
			t.Fatalf("shard %s: exit %d\n%s", k, code, stderr)
		}
		for _, o := range r.Images {
			swept = append(swept, o.Image)
		}
		files = append(files, file)
	}
	slices.Sort(swept)
	want := slices.Clone(all)
	slices.Sort(want)
	if !slices.Equal(swept, want) {
		t.Fatalf("the shards swept %v, the fleet is %v", swept, want)
	}
	args := []string{"rebase", "--output", "json"}
	for _, f := range files {
		args = append(args, "--merge-reports", f)
	}
	out, err := exec.Command(fx.Cipack, args...).Output()
	if err != nil {
		t.Fatalf("merge: %v\n%s", err, out)
	}
	var merged sweepReport
	if err := json.Unmarshal(out, &merged); err != nil {
		t.Fatal(err)
	}
	if merged.Counts["rebase"] != 2 || merged.Counts["skipped"] != 2 || len(merged.Images) != 4 {
		t.Fatalf("merged counts %v of %d images, want 2 rebased and 2 skipped", merged.Counts, len(merged.Images))
	}
	// One shard's report missing: refused, not a smaller fleet.
	cmd := exec.Command(fx.Cipack, "rebase", "--merge-reports", files[0], "--merge-reports", files[1])
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != exit.Usage {
		t.Fatalf("a missing shard: exit %d (%v), want %d", cmd.ProcessState.ExitCode(), err, exit.Usage)
	}
	_ = os.RemoveAll(dir)
}
