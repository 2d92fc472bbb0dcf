package acttest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// buildApp builds the example app into image on runImage, directly with
// cipack in the builder stand-in (as an earlier build workflow would have).
func buildApp(t *testing.T, image, runImage string) string {
	t.Helper()
	rootDir, _ := testenv.ModuleRoot()
	m, err := fx.Workspace(filepath.Join(rootDir, "examples", "app"), strings.ReplaceAll(image[strings.LastIndex(image, "/")+1:], ":", "-"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := fx.CipackBuild(context.Background(), m, "--image", image, "--run-image", runImage)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", image, err, out)
	}
	return testenv.MustHead(t, image).String()
}

func pushRunImage(t *testing.T, ref, version string) {
	t.Helper()
	img, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.Push(context.Background(), ref, img); err != nil {
		t.Fatal(err)
	}
}

// dispatchReceiver stands in for GitHub's repository_dispatch endpoint.
type dispatchReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	auth   []string
}

func newDispatchReceiver(t *testing.T) *dispatchReceiver {
	d := &dispatchReceiver{}
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		d.mu.Lock()
		d.bodies = append(d.bodies, b)
		d.auth = append(d.auth, r.Header.Get("Authorization"))
		d.mu.Unlock()
		w.WriteHeader(http.StatusNoContent) // what GitHub answers
	}))
	t.Cleanup(d.Close)
	return d
}

func TestRebaseExampleOnScheduleAndDispatch(t *testing.T) {
	needFixture(t)
	h := fx.Registry.Host
	run := h + "/gha-rebase/run:latest"
	pushRunImage(t, run, "v1")
	appA, appB := h+"/gha-rebase/a:latest", h+"/gha-rebase/b:latest"
	oldA := buildApp(t, appA, run)
	oldB := buildApp(t, appB, run)

	// A builder whose shell buildpack moved, for app B.
	bps, err := testenv.ExampleBuildpacks()
	if err != nil {
		t.Fatal(err)
	}
	bumpedDir := filepath.Join(fx.Dir, "cnb-bumped")
	if _, err := testenv.MakeBuilder(bumpedDir, testenv.BuilderSpec{LifecycleDir: fx.LifecycleDir, RunImage: run, Buildpacks: bps,
		VersionOverride: map[string]string{"cipack-examples/shell": "0.0.2"}}); err != nil {
		t.Fatal(err)
	}
	bumped := h + "/gha-rebase/builder:bumped"
	base, _ := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "builder"})
	if _, err := fx.PushBuilder(context.Background(), bumpedDir, bumped, base); err != nil {
		t.Fatal(err)
	}
	receiver := newDispatchReceiver(t)

	fleet := `images:
  - image: ` + appA + `
  - image: ` + appB + `
    builder: ` + bumped + `
    trigger:
      webhook:
        url: ` + receiver.URL + `/repos/example-org/b/dispatches
        tokenEnv: CIPACK_DISPATCH_TOKEN
        eventType: cipack-rebuild
`
	r := newRepo(t, map[string]string{
		".github/workflows/rebase.yml": example(t, "rebase.yml", true),
		".github/cipack-fleet.yaml":    fleet,
	})
	pushRunImage(t, run, "v2")

	// workflow_dispatch with dry-run: the plan, nothing pushed, nothing sent.
	res := r.run(t, "rebase.yml", "workflow_dispatch", "--input", "dry-run=true")
	if res.code != 0 {
		t.Fatalf("dry run: act exited %d\n%s", res.code, res.out)
	}
	if !strings.Contains(res.out, "rebased 1, rebuild 1") || !strings.Contains(res.out, "dry run: nothing pushed") {
		t.Fatalf("dry run report missing:\n%s", res.out)
	}
	if testenv.MustHead(t, appA).String() != oldA || len(receiver.bodies) != 0 {
		t.Fatal("a dry run pushed or dispatched")
	}

	// schedule: A is rebased in place, B's repository gets a dispatch.
	res = r.run(t, "rebase.yml", "schedule", "-s", "CIPACK_DISPATCH_TOKEN=dispatch-token-123")
	if res.code != 0 {
		t.Fatalf("schedule: act exited %d\n%s", res.code, res.out)
	}
	newA := testenv.MustHead(t, appA).String()
	if newA == oldA {
		t.Fatal("app A was not rebased")
	}
	for _, want := range []string{"Summary - ### cipack rebase", "| `" + appA + "` | rebase | STACK |", "| `" + appB + "` | rebuild | BUILDPACK |", "rebased 1, rebuild 1"} {
		if !strings.Contains(res.out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(res.out, "dispatch-token-123") {
		t.Error("the dispatch token reached the log")
	}
	// The attest job follows the sweep's moved-json: exactly the rebased
	// digest of A (GitHub's attest action is a local stand-in here).
	nameA := strings.TrimSuffix(appA, ":latest")
	// (act also echoes the step's command, with $NAME unexpanded: count
	// the expanded lines only.)
	if n := strings.Count(res.out, "provenance stand-in - subject="+fx.Registry.Host); n != 1 || !strings.Contains(res.out, "provenance stand-in - subject="+nameA+"@"+newA) {
		t.Errorf("the attest job should attest %s@%s once (%d attestations)", nameA, newA, n)
	}
	if testenv.MustHead(t, appB).String() != oldB {
		t.Fatal("a rebuild verdict must not push")
	}
	receiver.mu.Lock()
	if len(receiver.bodies) != 1 || receiver.auth[0] != "Bearer dispatch-token-123" {
		t.Fatalf("dispatches %d, auth %v", len(receiver.bodies), receiver.auth)
	}
	var dispatch struct {
		EventType     string         `json:"event_type"`
		ClientPayload map[string]any `json:"client_payload"`
	}
	if err := json.Unmarshal(receiver.bodies[0], &dispatch); err != nil {
		t.Fatal(err)
	}
	body := receiver.bodies[0]
	receiver.mu.Unlock()
	if dispatch.EventType != "cipack-rebuild" || dispatch.ClientPayload["image"] != appB || dispatch.ClientPayload["reason"] != "BUILDPACK" {
		t.Fatalf("dispatch body %s", body)
	}

	// The app repository's receiver workflow runs on that dispatch and
	// rebuilds the image.
	app := newRepo(t, map[string]string{".github/workflows/rebuild.yml": example(t, "rebuild-on-dispatch.yml", true)})
	event := filepath.Join(t.TempDir(), "event.json")
	var payload map[string]any
	_ = json.Unmarshal(body, &payload)
	payload["action"] = "cipack-rebuild"
	b, _ := json.Marshal(payload)
	if err := os.WriteFile(event, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res = app.run(t, "rebuild.yml", "repository_dispatch", "-e", event, "--var", "CIPACK_BUILDER="+fx.BuilderImage)
	if res.code != 0 {
		t.Fatalf("receiver: act exited %d\n%s", res.code, res.out)
	}
	if !strings.Contains(res.out, "rebuilding "+appB+" because BUILDPACK") {
		t.Fatalf("the receiver did not read the payload:\n%s", res.out)
	}
	if _, digest := pushed(t, res.out); testenv.MustHead(t, appB).String() != digest {
		t.Fatal("the rebuilt image's digest output is not the registry's")
	}
}
