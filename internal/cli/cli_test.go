package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

func execute(args []string, env map[string]string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, Env{
		Getenv: func(k string) string { return env[k] },
		Stdout: &out, Stderr: &errb,
	})
	return code, out.String(), errb.String()
}

func TestEnvBindsFlags(t *testing.T) {
	o := &buildOptions{}
	cmd := &cobra.Command{Use: "build"}
	o.addFlags(cmd)
	_ = cmd.Flags().Parse([]string{"--tag", "fromflag"})
	env := map[string]string{
		"CIPACK_IMAGE":             "r.example/app",
		"CIPACK_ENV":               "A=1,2\nB=x=y\n\n",
		"CIPACK_TAG":               "fromenv",
		"CIPACK_INSECURE_REGISTRY": "a:1,b:2",
	}
	if err := bindEnv(cmd.Flags(), func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if o.Image != "r.example/app" {
		t.Errorf("image %q", o.Image)
	}
	if strings.Join(o.Env, "|") != "A=1,2|B=x=y" {
		t.Errorf("env %q: one entry per line, commas kept", o.Env)
	}
	if strings.Join(o.Tags, "|") != "fromflag" {
		t.Errorf("a flag given on the command line wins over its env var: %q", o.Tags)
	}
	if strings.Join(o.Insecure, "|") != "a:1|b:2" {
		t.Errorf("insecure %q", o.Insecure)
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	code, _, stderr := execute([]string{"build"}, nil)
	if code != exit.Usage || !strings.Contains(stderr, "--image") {
		t.Fatalf("no image: %d %s", code, stderr)
	}
	code, _, _ = execute([]string{"build", "--nope"}, nil)
	if code != exit.Usage {
		t.Fatalf("unknown flag: %d", code)
	}
	code, _, stderr = execute([]string{"build"}, map[string]string{"CIPACK_OUTPUT": "xml", "CIPACK_IMAGE": "r.example/a"})
	if code != exit.Usage || !strings.Contains(stderr, "--output") {
		t.Fatalf("bad output from env: %d %s", code, stderr)
	}
	code, stdout, _ := execute([]string{"exit-codes"}, nil)
	if code != 0 || !strings.Contains(stdout, "  7  no buildpack group passed detection") {
		t.Fatalf("exit-codes: %d %s", code, stdout)
	}
}

func TestGitHubAnnotatesAndMasks(t *testing.T) {
	env := map[string]string{"GITHUB_ACTIONS": "true", "CNB_REGISTRY_AUTH": `{"r.example":"Basic c2VjcmV0"}`}
	code, _, stderr := execute([]string{"build", "--image", "r.example/a", "--env", "NOEQUALS"}, env)
	if code != exit.Usage {
		t.Fatalf("code %d", code)
	}
	mask := strings.Index(stderr, "::add-mask::")
	annot := strings.Index(stderr, "::error title=input env::")
	if mask < 0 || annot < 0 || mask > annot {
		t.Fatalf("want the mask first, then an error annotation naming the env input:\n%s", stderr)
	}
}

// Exit codes come from error types: cobra's flag, argument and command
// errors are typed where they are made, and ad-hoc rebase inputs blame
// the input at fault.
func TestTypedUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args    []string
		subject string
	}{
		{[]string{"build", "--nope"}, "flags:"},
		{[]string{"build", "--jobs"}, "flags:"},
		{[]string{"build", "extra"}, "arguments:"},
		{[]string{"bulid"}, "command:"},
		{[]string{"copy-self"}, "arguments:"},
		{[]string{"rebase", "--jobs", "many", "r.example/a:latest"}, "flags:"},
		{[]string{"rebase", "r.example/a:latest", "--builder", "NOT VALID"}, "--builder:"},
		{[]string{"rebase", "NOT VALID"}, "IMAGE:"},
		{[]string{"rebase", "--merge-reports", "a.json", "--stage"}, "--merge-reports:"},
		{[]string{"rebase", "--merge-reports", "a.json", "--dry-run"}, "--merge-reports:"},
		{[]string{"rebase", "--merge-reports", "a.json", "--run-image-changed", "r.example/run:1"}, "--merge-reports:"},
		{[]string{"rebase", "r.example/a@sha256:" + strings.Repeat("a", 64)}, "IMAGE:"},
	} {
		code, _, stderr := execute(c.args, nil)
		if code != exit.Usage || !strings.Contains(stderr, "error: "+c.subject) {
			t.Errorf("%v: exit %d, want %d blaming %s\n%s", c.args, code, exit.Usage, c.subject, stderr)
		}
	}
	if code, _, _ := execute(nil, nil); code != 0 {
		t.Errorf("cipack with no command prints help: exit %d", code)
	}
}

// A sweep interrupted by a signal exits 130, after its report.
func TestInterruptedSweepExits130(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := Execute(ctx, []string{"rebase", "127.0.0.1:1/app:latest", "--output", "json"}, Env{
		Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &errb,
	})
	if code != exit.Canceled || !strings.Contains(out.String(), `"images"`) {
		t.Fatalf("exit %d, want %d with the report on stdout\n%s\n%s", code, exit.Canceled, out.String(), errb.String())
	}
}

// The action's username/password cover every image a build names: tags in
// another registry, the cache and previous images.
func TestBuildCredentialsCoverEveryImage(t *testing.T) {
	o := &buildOptions{}
	o.Image, o.Tags = "a.example/app:latest", []string{"v1", "b.example/app:v1"}
	o.CacheImage, o.PreviousImage = "c.example/cache", "d.example/prev:latest"
	env := Env{Getenv: func(k string) string {
		return map[string]string{"CIPACK_REGISTRY_USERNAME": "u", "CIPACK_REGISTRY_PASSWORD": "p"}[k]
	}}
	reg, err := newRegistry(env, nil, 0, o.images()...)
	if err != nil {
		t.Fatal(err)
	}
	v, err := reg.LifecycleAuth(o.images()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"a.example", "b.example", "c.example", "d.example"} {
		if !strings.Contains(v, `"`+r+`":"Basic `) {
			t.Errorf("no credentials for %s in %s", r, v)
		}
	}
}

func TestDefaultProcessIsProcessType(t *testing.T) {
	o := &buildOptions{}
	cmd := &cobra.Command{Use: "build"}
	o.addFlags(cmd)
	if err := cmd.Flags().Parse([]string{"--default-process", "web", "--env-file", "a", "--env-file", "b"}); err != nil {
		t.Fatal(err)
	}
	if o.ProcessType != "web" || strings.Join(o.EnvFiles, ",") != "a,b" {
		t.Fatalf("process type %q, env files %q", o.ProcessType, o.EnvFiles)
	}
}

// As root (the sudo re-exec keeps the user's HOME) the store never lands
// in the user's home: it would leave them a root-only dir they cannot
// remove.
func TestDefaultBuilderCacheStaysOutOfTheUsersHome(t *testing.T) {
	home := func() (string, error) { return "/home/runner/.cache", nil }
	if got := defaultBuilderCache(0, home); got != "/var/cache/cipack/builders" {
		t.Errorf("as root: %s", got)
	}
	if got := defaultBuilderCache(1001, home); got != "/home/runner/.cache/cipack/builders" {
		t.Errorf("as a user: %s", got)
	}
}

// copy-self onto a directory is refused before anything is copied, and
// leaves nothing in it.
func TestCopySelfOntoADirectoryLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := execute([]string{"copy-self", dir}, nil)
	if code != exit.Usage || !strings.Contains(stderr, "DEST: "+dir+" is a directory") {
		t.Fatalf("exit %d, want %d naming DEST\n%s", code, exit.Usage, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("copy-self left %v in the directory", entries)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 1 {
		t.Fatalf("copy-self left %v next to the directory", entries)
	}
}

// copy-self onto a full disk is exit 13 naming DEST and saying to free
// space there, not a DEST problem (exit 2).
func TestCopySelfOntoAFullDisk(t *testing.T) {
	testenv.NeedRoot(t)
	dest := filepath.Join(testenv.Tmpfs(t, "1M"), "cipack")
	code, _, stderr := execute([]string{"copy-self", dest}, nil)
	if code != exit.Sandbox || !strings.Contains(stderr, "free space on the filesystem holding "+dest) {
		t.Fatalf("exit %d, want %d naming %s\n%s", code, exit.Sandbox, dest, stderr)
	}
}

// A staged plan travels between jobs: --promote-digest (the stage step's
// report-digest output) refuses a plan that changed on its way, before
// anything is read from a registry; the output is the report file's own
// digest.
func TestPromoteDigestRefusesAChangedPlan(t *testing.T) {
	dir := t.TempDir()
	plan, report, outputs := filepath.Join(dir, "plan.json"), filepath.Join(dir, "report.json"), filepath.Join(dir, "out")
	if err := os.WriteFile(outputs, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	gh := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": outputs}
	// An empty plan promotes nothing; its report file and output are real.
	if err := os.WriteFile(plan, []byte(`{"images":[],"counts":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	planBytes, _ := os.ReadFile(plan)
	if code, _, stderr := execute([]string{"rebase", "--promote", plan, "--promote-digest", digestOf(planBytes), "--report-file", report}, gh); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	written, _ := os.ReadFile(report)
	out, _ := os.ReadFile(outputs)
	staged := digestOf(written)
	if !strings.Contains(string(out), "report-digest<<") || !strings.Contains(string(out), "\n"+staged+"\n") {
		t.Fatalf("report-digest output is not %s:\n%s", staged, out)
	}
	if code, _, stderr := execute([]string{"rebase", "--promote", report, "--promote-digest", staged}, nil); code != 0 {
		t.Fatalf("the staged plan itself was refused: exit %d\n%s", code, stderr)
	}
	if err := os.WriteFile(report, append(written, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := execute([]string{"rebase", "--promote", report, "--promote-digest", staged}, nil)
	if code != exit.Usage || !strings.Contains(stderr, "not the staged plan "+staged) || !strings.Contains(stderr, "nothing moved") {
		t.Fatalf("a changed plan: exit %d\n%s", code, stderr)
	}
	for _, args := range [][]string{
		// Required: without it a plan changed on its way would promote.
		{"rebase", "--promote", report},
		{"rebase", "--promote", report, "--promote-digest", ""},
		{"rebase", "--promote-digest", staged, "r.example/a:latest"},
		{"rebase", "--promote", report, "--promote-digest", "sha256:abc"},
		{"rebase", "--promote", report, "--promote-digest", strings.ToUpper(staged)},
	} {
		if code, _, stderr := execute(args, nil); code != exit.Usage || !strings.Contains(stderr, "error: --promote-digest:") {
			t.Errorf("%v: exit %d\n%s", args, code, stderr)
		}
	}
}

// A promote reads the fleet it was staged with (--config: its runImage
// entries are the run images the candidates must sit on); a fleet that
// cannot be read is refused naming the file, before any registry call.
func TestPromoteTakesTheFleet(t *testing.T) {
	dir := t.TempDir()
	plan, fleet := filepath.Join(dir, "plan.json"), filepath.Join(dir, "fleet.yaml")
	raw := []byte(`{"images":[],"counts":{}}`)
	if err := os.WriteFile(plan, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fleet, []byte("images:\n  - image: r.example/a:latest\n    runImage: r.example/run:latest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := execute([]string{"rebase", "--promote", plan, "--promote-digest", digestOf(raw), "--config", fleet}, nil); code != 0 {
		t.Fatalf("promote with the fleet: exit %d\n%s", code, stderr)
	}
	missing := filepath.Join(dir, "nope.yaml")
	if code, _, stderr := execute([]string{"rebase", "--promote", plan, "--promote-digest", digestOf(raw), "--config", missing}, nil); code == 0 || !strings.Contains(stderr, missing) {
		t.Fatalf("promote with a missing fleet: exit %d\n%s", code, stderr)
	}
}
