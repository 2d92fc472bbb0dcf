package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/rebase"
)

func writeReport(t *testing.T, dir, shard string, dryRun bool, outcomes ...rebase.Outcome) string {
	t.Helper()
	r := rebase.NewReport(outcomes, dryRun, 0)
	r.Shard = shard
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, strings.ReplaceAll(shard, "/", "-")+".json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMergeReportsKeepsTheExitCodeRule(t *testing.T) {
	dir := t.TempDir()
	ok1 := writeReport(t, dir, "1/2", false, rebase.Outcome{Image: "r.example/a:1", Verdict: rebase.UpToDate})
	ok2 := writeReport(t, dir, "2/2", false, rebase.Outcome{Image: "r.example/b:1", Verdict: rebase.Rebase, NewDigest: "sha256:" + strings.Repeat("b", 64)})
	code, out, stderr := execute([]string{"rebase", "--merge-reports", ok1, "--merge-reports", ok2, "-o", "json"}, nil)
	var merged rebase.Report
	if code != 0 || json.Unmarshal([]byte(out), &merged) != nil || len(merged.Images) != 2 || merged.Counts["rebase"] != 1 {
		t.Fatalf("merge: exit %d\n%s\n%s", code, out, stderr)
	}
	failed := writeReport(t, dir, "2/2", false, rebase.Outcome{Image: "r.example/b:1", Verdict: rebase.Failed, Error: "registry said no"})
	if code, _, stderr := execute([]string{"rebase", "--merge-reports", ok1, "--merge-reports", failed}, nil); code != exit.SomeFailed {
		t.Fatalf("a failed image in a shard: exit %d, want %d\n%s", code, exit.SomeFailed, stderr)
	}
	dry1 := writeReport(t, filepath.Join(dir), "1/1", true, rebase.Outcome{Image: "r.example/a:1", Verdict: rebase.Rebuild})
	if code, _, _ := execute([]string{"rebase", "--merge-reports", dry1, "--exit-code"}, nil); code != exit.ChangesPending {
		t.Fatalf("a dry run with changes and --exit-code: exit %d, want %d", code, exit.ChangesPending)
	}
	notReport := filepath.Join(dir, "x.json")
	if err := os.WriteFile(notReport, []byte(`{"hello": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"a shard missing":  {"--merge-reports", ok1},
		"not a report":     {"--merge-reports", notReport},
		"no such file":     {"--merge-reports", filepath.Join(dir, "nope.json")},
		"with a fleet too": {"--merge-reports", ok1, "--config", "fleet.yaml"},
		"with --shard":     {"--merge-reports", ok1, "--shard", "1/2"},
	} {
		code, _, stderr := execute(append([]string{"rebase"}, args...), nil)
		if code != exit.Usage || !strings.Contains(stderr, "--merge-reports") {
			t.Errorf("%s: exit %d, want %d naming --merge-reports\n%s", name, code, exit.Usage, stderr)
		}
	}
	if code, _, stderr := execute([]string{"rebase", "--shard", "5/4", "r.example/a:1"}, nil); code != exit.Usage || !strings.Contains(stderr, "--shard") {
		t.Errorf("--shard 5/4: exit %d\n%s", code, stderr)
	}
}
