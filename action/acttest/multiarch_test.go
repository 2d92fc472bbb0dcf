package acttest

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/testenv"
)

// The multi-arch example: the amd64 leg of the matrix builds for real;
// this machine cannot build arm64, so the test pushes a synthesized arm64
// image (same layers, config platform arm64) where the arm64 leg would
// have; then the merge job combines both into one index. (act runs the
// jobs a job needs, so the merge run builds the amd64 leg again.)
func TestMultiArchExample(t *testing.T) {
	needFixture(t)
	repoName := fx.Registry.Host + "/gha-multiarch/app"
	r := newRepo(t, map[string]string{".github/workflows/multiarch.yml": example(t, "multiarch.yml", true)})
	shaOut, err := exec.Command("git", "-C", r.dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.TrimSpace(string(shaOut))
	vars := []string{"--var", "CIPACK_IMAGE=" + repoName, "--var", "CIPACK_BUILDER=" + fx.BuilderImage, "-P", "ubuntu-24.04-arm=-self-hosted"}

	res := r.run(t, "multiarch.yml", "push", append([]string{"-j", "build", "--matrix", "arch:amd64"}, vars...)...)
	if res.code != 0 || !strings.Contains(res.out, "built "+repoName+"@sha256:") || !strings.Contains(res.out, "for linux/amd64") {
		t.Fatalf("amd64 leg: act exited %d:\n%s", res.code, res.out)
	}
	amdRef, _ := name.ParseReference(repoName + ":" + sha + "-amd64")
	amd, err := remote.Image(amdRef)
	if err != nil {
		t.Fatalf("the amd64 leg pushed no %s: %v", amdRef, err)
	}
	arm, err := testenv.ForPlatform(amd, v1.Platform{OS: "linux", Architecture: "arm64"})
	if err != nil {
		t.Fatal(err)
	}
	armDigest, err := testenv.Push(context.Background(), repoName+":"+sha+"-arm64", arm)
	if err != nil {
		t.Fatal(err)
	}

	res = r.run(t, "multiarch.yml", "push", append([]string{"-j", "merge", "--matrix", "arch:amd64"}, vars...)...)
	if res.code != 0 || !strings.Contains(res.out, "published "+repoName+"@sha256:") || !strings.Contains(res.out, "(linux/amd64,linux/arm64)") {
		t.Fatalf("merge job: act exited %d:\n%s", res.code, res.out)
	}
	latest, _ := name.ParseReference(repoName + ":latest")
	idx, err := remote.Index(latest)
	if err != nil {
		t.Fatalf("latest is not an index: %v", err)
	}
	im, _ := idx.IndexManifest()
	// act runs the jobs a job needs: the merge run rebuilt the amd64 leg
	// (--matrix keeps the arm64 leg out), so compare with its tag now.
	amdNow, err := remote.Head(amdRef)
	if err != nil {
		t.Fatal(err)
	}
	amdDigest := amdNow.Digest
	got := map[string]string{}
	for _, m := range im.Manifests {
		got[m.Platform.Architecture] = m.Digest.String()
	}
	if got["amd64"] != amdDigest.String() || got["arm64"] != armDigest.String() {
		t.Fatalf("index children %v, want the amd64 build %s and the arm64 image %s", got, amdDigest, armDigest)
	}
}
