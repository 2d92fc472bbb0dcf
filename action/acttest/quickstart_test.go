package acttest

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// quickStart is a workflow of docs/quickstart.md with its public builder
// and registry swapped for the test's: the rest runs as the docs show it.
func quickStart(t *testing.T, name string) string {
	t.Helper()
	wf, err := testenv.QuickStart(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"heroku/builder:24", "ghcr.io/"} {
		if !strings.Contains(wf, s) {
			t.Fatalf("quick start %s no longer names %s: update the test's swaps", name, s)
		}
	}
	wf = strings.ReplaceAll(wf, "heroku/builder:24", fx.BuilderImage)
	return strings.ReplaceAll(wf, "ghcr.io/", fx.Registry.Host+"/")
}

// The ubuntu-latest quick start, as a user copies it: pull mode on the
// plain host, the image named after the repository, the sha as a tag.
func TestQuickStartUbuntuLatest(t *testing.T) {
	needFixture(t)
	r := newRepo(t, map[string]string{".github/workflows/build.yml": quickStart(t, "ubuntu-latest")}).onPlainHost()
	res := r.run(t, "build.yml", "push", "--env", "GITHUB_REPOSITORY=Quick-Start/My-App")
	if res.code != 0 {
		t.Fatalf("act exited %d:\n%s", res.code, res.out)
	}
	image := fx.Registry.Host + "/quick-start/my-app"
	m := regexp.MustCompile(`built (\S+)@(sha256:[0-9a-f]{64})`).FindStringSubmatch(res.out)
	if m == nil || m[1] != image {
		t.Fatalf("the workflow printed no image-ref of %s:\n%s", image, res.out)
	}
	sha := git(t, r.dir, "rev-parse", "HEAD")
	for _, tag := range []string{"latest", sha} {
		if got := testenv.MustHead(t, image+":"+tag).String(); got != m[2] {
			t.Fatalf("%s:%s is %s, the output says %s", image, tag, got, m[2])
		}
	}
	if !strings.Contains(res.out, "unpacked") {
		t.Fatalf("not a pull-mode build:\n%s", res.out)
	}
}

// The container-job quick start: in-builder mode, the job's container
// stood in for by the builder sandbox (as for the examples).
func TestQuickStartContainerJob(t *testing.T) {
	needFixture(t)
	wf := regexp.MustCompile(`(?m)^    container:\n(      .*\n)+`).ReplaceAllString(quickStart(t, "container-job"), "")
	if strings.Contains(wf, "container:") {
		t.Fatal("could not drop the container from the quick start")
	}
	r := newRepo(t, map[string]string{".github/workflows/build.yml": wf})
	res := r.run(t, "build.yml", "push")
	if res.code != 0 {
		t.Fatalf("act exited %d:\n%s", res.code, res.out)
	}
	image := fx.Registry.Host + "/my-org/my-app"
	m := regexp.MustCompile(`built (\S+)@(sha256:[0-9a-f]{64})`).FindStringSubmatch(res.out)
	if m == nil || m[1] != image || testenv.MustHead(t, image+":latest").String() != m[2] {
		t.Fatalf("the workflow printed no image-ref of %s:latest:\n%s", image, res.out)
	}
	if strings.Contains(res.out, "unpacked") {
		t.Fatalf("a container job must build in the builder, not pull it:\n%s", res.out)
	}
}
