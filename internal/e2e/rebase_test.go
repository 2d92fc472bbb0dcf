package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

type sweepReport struct {
	DryRun bool           `json:"dryRun"`
	Counts map[string]int `json:"counts"`
	Images []struct {
		Image     string   `json:"image"`
		Verdict   string   `json:"verdict"`
		Reason    string   `json:"reason"`
		Detail    string   `json:"detail"`
		OldDigest string   `json:"oldDigest"`
		NewDigest string   `json:"newDigest"`
		Tags      []string `json:"tags"`
		Triggered bool     `json:"triggered"`
		Error     string   `json:"error"`
		Source    string   `json:"source"`
		Platforms []struct {
			Platform  string `json:"platform"`
			Verdict   string `json:"verdict"`
			OldDigest string `json:"oldDigest"`
			NewDigest string `json:"newDigest"`
		} `json:"platforms"`
	} `json:"images"`
}

func (r sweepReport) byImage(t testing.TB, image string) (verdict, reason, detail, errText, newDigest string) {
	t.Helper()
	for _, o := range r.Images {
		if o.Image == image {
			return o.Verdict, o.Reason, o.Detail, o.Error, o.NewDigest
		}
	}
	t.Fatalf("report has no %s", image)
	return
}

// cipackRebase runs `cipack rebase --output json` on a fleet file.
func cipackRebase(t testing.TB, fleet string, env []string, args ...string) (sweepReport, int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(fleet), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fx.Cipack, append([]string{"rebase", "--config", path, "--output", "json"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	var r sweepReport
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("rebase printed no JSON report (exit %d): %v\nstdout:\n%s\nstderr:\n%s", cmd.ProcessState.ExitCode(), err, out.String(), errb.String())
	}
	return r, cmd.ProcessState.ExitCode(), errb.String()
}

// rebaseWorld is a private run image and two apps built on it, so the
// test can move the run image without touching the other tests'.
type rebaseWorld struct {
	run, appA, appAStable, appB, plain, noRebase string
}

func newRebaseWorld(t *testing.T, prefix string) rebaseWorld {
	t.Helper()
	h := fx.Registry.Host
	w := rebaseWorld{
		run: h + "/" + prefix + "/run:latest", appA: h + "/" + prefix + "/a:latest", appAStable: h + "/" + prefix + "/a:stable",
		appB: h + "/" + prefix + "/b:latest", plain: h + "/" + prefix + "/plain:latest", noRebase: h + "/" + prefix + "/norebase:latest",
	}
	pushRun(t, w.run, "v1", testenv.StackID)
	for _, app := range []string{w.appA, w.appB} {
		r := cipackBuild(t, "rb", nil, "--image", app, "--tag", "stable", "--run-image", w.run, "--process-type", "web")
		if r.code != 0 {
			t.Fatalf("build %s: %d\n%s", app, r.code, r.stderr)
		}
	}
	plain, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.Push(context.Background(), w.plain, plain); err != nil {
		t.Fatal(err)
	}
	// An app whose buildpacks forbid rebasing.
	img := testenv.MustPull(t, w.appB)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Labels["io.buildpacks.rebasable"] = "false"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.Push(context.Background(), w.noRebase, img); err != nil {
		t.Fatal(err)
	}
	return w
}

func pushRun(t testing.TB, ref, version, stack string) v1.Hash {
	t.Helper()
	img, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: version, StackID: stack})
	if err != nil {
		t.Fatal(err)
	}
	d, err := testenv.Push(context.Background(), ref, img)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRebaseSweep(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "sweep")
	fleet := `defaults:
  builder: ` + fx.BuilderImage + `
images:
  - image: ` + w.appA + `
    tags: [` + w.appAStable + `]
  - image: ` + w.appB + `
  - image: ` + w.plain + `
  - image: ` + w.noRebase + `
`
	before := map[string]string{}
	for _, ref := range []string{w.appA, w.appAStable, w.appB, w.noRebase} {
		before[ref] = testenv.MustHead(t, ref).String()
	}

	// Nothing moved: everything is up to date, nothing is pushed.
	r, code, stderr := cipackRebase(t, fleet, nil)
	if code != 0 || r.Counts["up-to-date"] != 3 || r.Counts["skipped"] != 1 {
		t.Fatalf("no-drift sweep: exit %d counts %v\n%s", code, r.Counts, stderr)
	}
	if v, reason, _, _, _ := r.byImage(t, w.plain); v != "skipped" || reason != "NOT_CNB" {
		t.Fatalf("plain image: %s %s", v, reason)
	}

	// The run image moves.
	pushRun(t, w.run, "v2", testenv.StackID)

	// Dry run: the plan, exit 12 with --exit-code, nothing pushed.
	r, code, _ = cipackRebase(t, fleet, nil, "--dry-run", "--exit-code")
	if code != exit.ChangesPending || !r.DryRun || r.Counts["rebase"] != 2 {
		t.Fatalf("dry run: exit %d, counts %v", code, r.Counts)
	}
	if v, reason, _, _, _ := r.byImage(t, w.noRebase); v != "skipped" || reason != "NOT_REBASABLE" {
		t.Fatalf("not-rebasable image: %s %s", v, reason)
	}
	for ref, d := range before {
		if got := testenv.MustHead(t, ref).String(); got != d {
			t.Fatalf("dry run moved %s: %s → %s", ref, d, got)
		}
	}

	// Anchor: the lifecycle's own rebaser binary on a copy of app A.
	binCopy := fx.Registry.Host + "/sweep/a-by-rebaser:latest"
	if _, err := testenv.Push(context.Background(), binCopy, testenv.MustPull(t, w.appA)); err != nil {
		t.Fatal(err)
	}
	runRebaserBinary(t, binCopy, w.run)

	// The real sweep.
	r, code, stderr = cipackRebase(t, fleet, nil)
	if code != 0 || r.Counts["rebase"] != 2 {
		t.Fatalf("sweep: exit %d counts %v\n%s", code, r.Counts, stderr)
	}
	_, reason, _, _, newA := r.byImage(t, w.appA)
	if reason != "STACK" || newA == "" {
		t.Fatalf("app A: reason %s digest %s", reason, newA)
	}
	for _, ref := range []string{w.appA, w.appAStable} {
		if got := testenv.MustHead(t, ref).String(); got != newA {
			t.Fatalf("%s is on %s, want the new digest %s", ref, got, newA)
		}
	}
	if got := testenv.MustHead(t, w.noRebase).String(); got != before[w.noRebase] {
		t.Fatal("a not-rebasable image was moved")
	}

	// Same CNB metadata as the rebaser binary's result, same layers.
	ours, theirs := testenv.MustConfig(t, w.appA), testenv.MustConfig(t, binCopy)
	for _, l := range []string{"io.buildpacks.lifecycle.metadata", "io.buildpacks.build.metadata", "io.buildpacks.base.id", "io.buildpacks.stack.id"} {
		if ours.Config.Labels[l] != theirs.Config.Labels[l] {
			t.Errorf("label %s differs from the rebaser binary's:\ncipack:  %s\nrebaser: %s", l, ours.Config.Labels[l], theirs.Config.Labels[l])
		}
	}
	if strings.Join(diffIDs(ours), ",") != strings.Join(diffIDs(theirs), ",") {
		t.Errorf("layers differ from the rebaser binary's")
	}
	if d := testenv.MustHead(t, binCopy).String(); d != newA {
		t.Errorf("digest %s differs from the rebaser binary's %s for the same inputs", newA, d)
	}
	// The app layers are the old ones; the base is the new one.
	oldLayers := diffIDs(testenv.MustConfig(t, w.noRebase)) // same app, still on the old base
	if strings.Join(diffIDs(ours)[1:], ",") != strings.Join(oldLayers[1:], ",") {
		t.Fatalf("app layers changed in the rebase:\nold %v\nnew %v", oldLayers, diffIDs(ours))
	}
	runTop := testenv.MustConfig(t, w.run).RootFS.DiffIDs
	if got := ours.RootFS.DiffIDs[0]; got != runTop[len(runTop)-1] {
		t.Fatalf("rebased image's base layer %s is not the new run image's %s", got, runTop[len(runTop)-1])
	}
	out, err := testenv.RunImageProcess(t.Context(), w.appA, "web", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "base: v2") || !strings.Contains(out, "Hello from cipack!") {
		t.Fatalf("the rebased image printed:\n%s", out)
	}

	// Twice in a row: the second run finds nothing to do and pushes nothing.
	r, code, _ = cipackRebase(t, fleet, nil)
	// (the not-rebasable image stays behind, skipped, for its own rebuild)
	if code != 0 || r.Counts["up-to-date"] != 2 || r.Counts["skipped"] != 2 || r.Counts["rebase"] != 0 {
		t.Fatalf("second sweep: exit %d counts %v", code, r.Counts)
	}
	if got := testenv.MustHead(t, w.appA).String(); got != newA {
		t.Fatalf("second sweep moved app A again")
	}
}

func diffIDs(cf *v1.ConfigFile) []string {
	var out []string
	for _, d := range cf.RootFS.DiffIDs {
		out = append(out, d.String())
	}
	return out
}

// runRebaserBinary runs the lifecycle's rebaser (the anchor) on image.
func runRebaserBinary(t testing.TB, image, runImage string) {
	t.Helper()
	report := filepath.Join(fx.Dir, "rebaser-report-"+randSuffix())
	if err := os.MkdirAll(report, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(report, 0o777); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(fx.BuilderDir, "lifecycle", "rebaser"),
		"-run-image", runImage, "-report", filepath.Join(report, "report.toml"),
		"-uid", strconv.Itoa(fx.UID), "-gid", strconv.Itoa(fx.GID), image)
	cmd.Env = append(os.Environ(), "CNB_PLATFORM_API=0.15")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rebaser: %v\n%s", err, out)
	}
}

// webhookReceiver records what a rebuild trigger sends.
type webhookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	auth   []string
}

func newReceiver(t *testing.T) *webhookReceiver {
	w := &webhookReceiver{}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		w.mu.Lock()
		w.bodies = append(w.bodies, m)
		w.auth = append(w.auth, r.Header.Get("Authorization"))
		w.mu.Unlock()
		rw.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(w.Close)
	return w
}

func TestRebaseVerdictsAndErrorsPerImage(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "verdicts")
	hook := newReceiver(t)

	// A builder whose shell buildpack moved to 0.0.2.
	bps, err := testenv.ExampleBuildpacks()
	if err != nil {
		t.Fatal(err)
	}
	bumpedDir := filepath.Join(fx.Dir, "cnb-bumped-"+randSuffix())
	if _, err := testenv.MakeBuilder(bumpedDir, testenv.BuilderSpec{LifecycleDir: fx.LifecycleDir, RunImage: w.run, Buildpacks: bps,
		VersionOverride: map[string]string{"cipack-examples/shell": "0.0.2"}}); err != nil {
		t.Fatal(err)
	}
	bumped := fx.Registry.Host + "/verdicts/builder:bumped"
	base, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "builder"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.PushBuilder(context.Background(), bumpedDir, bumped, base); err != nil {
		t.Fatal(err)
	}
	// An incompatible run image (another base id) that app A opts in to.
	otherRun := fx.Registry.Host + "/verdicts/other-run:latest"
	pushRun(t, otherRun, "noble", "io.cipack.test.other")

	auth, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{User: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	dead, _ := testenv.FreePort()

	fleet := `images:
  - image: ` + w.appA + `
    runImage: ` + otherRun + `
    allowRunImageRename: true
  - image: ` + w.appB + `
    builder: ` + bumped + `
    trigger:
      webhook: {url: "` + hook.URL + `/hook", tokenEnv: HOOK_TOKEN}
  - image: ` + auth.Host + `/verdicts/a:latest
  - image: 127.0.0.1:` + strconv.Itoa(dead) + `/verdicts/a:latest
  - image: ` + w.noRebase + `
`
	beforeA, beforeB := testenv.MustHead(t, w.appA).String(), testenv.MustHead(t, w.appB).String()
	r, code, stderr := cipackRebase(t, fleet, []string{"HOOK_TOKEN=hook-secret"})
	if code != exit.SomeFailed {
		t.Fatalf("exit %d, want %d (some images failed)\n%s", code, exit.SomeFailed, stderr)
	}
	if v, reason, detail, _, _ := r.byImage(t, w.appA); v != "rebuild" || reason != "STACK_INCOMPATIBLE" || !strings.Contains(detail, "io.cipack.test.other") {
		t.Fatalf("incompatible run image: %s %s %s", v, reason, detail)
	}
	if v, reason, detail, _, _ := r.byImage(t, w.appB); v != "rebuild" || reason != "BUILDPACK" || !strings.Contains(detail, "cipack-examples/shell 0.0.1 → 0.0.2") {
		t.Fatalf("bumped buildpack: %s %s %s", v, reason, detail)
	}
	if v, _, _, e, _ := r.byImage(t, auth.Host+"/verdicts/a:latest"); v != "error" || !strings.Contains(e, "registry refused") {
		t.Fatalf("401: %s %s", v, e)
	}
	if v, _, _, e, _ := r.byImage(t, "127.0.0.1:"+strconv.Itoa(dead)+"/verdicts/a:latest"); v != "error" || !strings.Contains(e, "unreachable") {
		t.Fatalf("unreachable: %s %s", v, e)
	}
	if v, _, _, _, _ := r.byImage(t, w.noRebase); v != "up-to-date" {
		t.Fatalf("not-rebasable, nothing moved: %s", v)
	}
	if testenv.MustHead(t, w.appA).String() != beforeA || testenv.MustHead(t, w.appB).String() != beforeB {
		t.Fatal("rebuild verdicts must not push anything")
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if len(hook.bodies) != 1 || hook.bodies[0]["image"] != w.appB || hook.bodies[0]["reason"] != "BUILDPACK" ||
		hook.bodies[0]["digest"] != beforeB || hook.bodies[0]["builder"] != bumped || hook.auth[0] != "Bearer hook-secret" {
		t.Fatalf("webhook got %v with auth %v", hook.bodies, hook.auth)
	}
	if strings.Contains(stderr, "hook-secret") {
		t.Fatal("the webhook token leaked into the logs")
	}
}

// A dry run's plan is what the real run does, verdict for verdict and
// reason for reason, over every verdict.
func TestDryRunPlanIsWhatTheRunDoes(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "plan")
	h := fx.Registry.Host
	steadyRun, steady := h+"/plan/steady-run:latest", h+"/plan/steady:latest"
	pushRun(t, steadyRun, "v1", testenv.StackID)
	if r := cipackBuild(t, "plan", nil, "--image", steady, "--run-image", steadyRun); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	// A run image the lifecycle's target rule refuses (another
	// architecture): planned and done as a rebuild, never a rebase.
	otherBase := h + "/plan/other-arch:latest"
	if _, err := testenv.Push(context.Background(), otherBase, runFor(t, "v9", arm64)); err != nil {
		t.Fatal(err)
	}
	pushRun(t, w.run, "v2", testenv.StackID)
	fleet := "images:\n" +
		"  - image: " + w.appA + "\n    tags: [" + w.appAStable + "]\n" + // rebase
		"  - image: " + steady + "\n" + // up-to-date
		"  - image: " + w.appB + "\n    runImage: " + otherBase + "\n    allowRunImageRename: true\n" + // rebuild STACK_INCOMPATIBLE
		"  - image: " + w.noRebase + "\n" + // skipped NOT_REBASABLE
		"  - image: " + w.plain + "\n" + // skipped NOT_CNB
		"  - image: " + h + "/plan/missing:latest\n" // error
	plan, _, _ := cipackRebase(t, fleet, nil, "--dry-run")
	did, _, stderr := cipackRebase(t, fleet, nil)
	seen := map[string]bool{}
	for i, p := range plan.Images {
		d := did.Images[i]
		if p.Image != d.Image || p.Verdict != d.Verdict || p.Reason != d.Reason {
			t.Errorf("%s: planned %s %s, did %s %s (%s)\n%s", p.Image, p.Verdict, p.Reason, d.Verdict, d.Reason, d.Error, stderr)
		}
		seen[p.Verdict+" "+p.Reason] = true
	}
	for _, want := range []string{"rebase STACK", "up-to-date ", "rebuild STACK_INCOMPATIBLE", "skipped NOT_REBASABLE", "skipped NOT_CNB", "error "} {
		if !seen[want] {
			t.Errorf("the fleet should cover %q; saw %v", want, seen)
		}
	}
}
