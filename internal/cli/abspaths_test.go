package cli

import (
	"path/filepath"
	"testing"
	"time"
)

// rebase's and rollback's path flags become absolute against the
// working directory cipack started in, during Validate.
func TestRebaseValidateMakesPathsAbsolute(t *testing.T) {
	o := &rebaseOptions{cwd: "/ci/job", Output: "text", Jobs: 4, Timeout: time.Minute, Config: "fleet.yaml", ReportFile: "out/report.json"}
	if err := o.Validate(nil); err != nil {
		t.Fatal(err)
	}
	for flag, c := range map[string]struct{ got, want string }{
		"--config": {o.Config, "/ci/job/fleet.yaml"}, "--report-file": {o.ReportFile, "/ci/job/out/report.json"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", flag, c.got, c.want)
		}
	}
	m := &rebaseOptions{cwd: "/ci/job", Output: "text", Jobs: 4, Timeout: time.Minute, Merge: []string{"a.json", "/abs/b.json"}}
	if err := m.Validate(nil); err != nil {
		t.Fatal(err)
	}
	if m.Merge[0] != "/ci/job/a.json" || m.Merge[1] != "/abs/b.json" {
		t.Errorf("--merge-reports = %q", m.Merge)
	}
	p := &rebaseOptions{cwd: "/ci/job", Output: "text", Jobs: 1, Timeout: time.Minute, Promote: "plan.json", PromoteDigest: "sha256:" + zeros64()}
	if err := p.Validate(nil); err != nil {
		t.Fatal(err)
	}
	if p.Promote != filepath.Join("/ci/job", "plan.json") {
		t.Errorf("--promote = %q", p.Promote)
	}
}

func zeros64() string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = '0'
	}
	return string(b)
}
