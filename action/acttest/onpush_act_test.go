package acttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// The patch-on-push example, driven by a registry_package event as
// GitHub sends it (the payload's shape as GitHub documents it, its
// package_url the pushed run image) and by a repository_dispatch: only
// the app on the pushed run image is rebased; the app on another run
// image that moved too stays as it is until its own push.
func TestRebaseOnPushExample(t *testing.T) {
	needFixture(t)
	h := fx.Registry.Host
	runA, runB := h+"/gha-push/run-a:latest", h+"/gha-push/run-b:latest"
	pushRunImage(t, runA, "v1")
	pushRunImage(t, runB, "v1")
	appA, appB := h+"/gha-push/a:latest", h+"/gha-push/b:latest"
	oldA, oldB := buildApp(t, appA, runA), buildApp(t, appB, runB)
	pushRunImage(t, runA, "v2")
	pushRunImage(t, runB, "v2")
	r := newRepo(t, map[string]string{
		".github/workflows/rebase-on-push.yml": example(t, "rebase-on-push.yml", true),
		// runImage in the fleet: a push decides which apps it concerns
		// without reading any.
		".github/cipack-fleet.yaml": "images:\n  - image: " + appA + "\n    runImage: " + runA + "\n  - image: " + appB + "\n    runImage: " + runB + "\n",
	})
	event := func(name string, payload any) string {
		b, err := json.Marshal(payload)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), name+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	published := event("registry_package", map[string]any{
		"action": "published",
		"registry_package": map[string]any{
			"name": "run-a", "namespace": "gha-push", "ecosystem": "CONTAINER", "package_type": "CONTAINER",
			"package_version": map[string]any{
				"name": "sha256:" + strings.Repeat("0", 64), "package_url": runA,
				"container_metadata": map[string]any{"tag": map[string]any{"name": "latest"}},
			},
		},
	})
	res := r.run(t, "rebase-on-push.yml", "registry_package", "-e", published)
	if res.code != 0 {
		t.Fatalf("registry_package: act exited %d\n%s", res.code, res.out)
	}
	if testenv.MustHead(t, appA).String() == oldA {
		t.Fatalf("the app on the pushed run image was not rebased\n%s", res.out)
	}
	if testenv.MustHead(t, appB).String() != oldB {
		t.Fatal("the app on another run image was rebased by a push of run-a")
	}
	if !strings.Contains(res.out, "1 of 2 images may be on it\n") || strings.Contains(res.out, "gha-push/b:latest` | skipped") {
		t.Errorf("the log does not say how many images the push concerns:\n%s", res.out)
	}
	dispatched := event("repository_dispatch", map[string]any{
		"action": "run-image-pushed", "client_payload": map[string]any{"run_image": runB},
	})
	res = r.run(t, "rebase-on-push.yml", "repository_dispatch", "-e", dispatched)
	if res.code != 0 {
		t.Fatalf("repository_dispatch: act exited %d\n%s", res.code, res.out)
	}
	if testenv.MustHead(t, appB).String() == oldB {
		t.Fatal("the dispatch of run-b did not rebase the app on it")
	}
	// A payload is input from whoever may dispatch: a newline would write
	// more step outputs. It is refused before cipack runs.
	hostile := event("hostile_dispatch", map[string]any{
		"action": "run-image-pushed", "client_payload": map[string]any{"run_image": runA + "\nref=" + runB},
	})
	res = r.run(t, "rebase-on-push.yml", "repository_dispatch", "-e", hostile)
	if res.code == 0 || !strings.Contains(res.out, "the event's run image is not one image reference") || strings.Contains(res.out, "cipack rebase") && strings.Contains(res.out, "may be on it") {
		t.Fatalf("a run image with a newline: act exited %d\n%s", res.code, res.out)
	}
}
