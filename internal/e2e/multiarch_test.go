package e2e

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// Multi-arch: app tags and run images that are indexes. The lifecycle
// cannot run arm64 here, so every arm64 image is synthesized from its
// amd64 twin (same layers, config platform arm64, CNB metadata pointing at
// the arm64 run image): cipack only reads and rewrites metadata and layer
// lists, which is what these tests check. The amd64 app is built by the
// real lifecycle on the index run image.

var (
	amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}
)

// maWorld is one multi-arch fleet: a run image index and an app index
// (amd64 built by the lifecycle, arm64 synthesized, an attestation).
type maWorld struct {
	run, app, stable string
	runChild         map[string]v1.Image // "amd64"/"arm64" → run image of that platform
	appAmd, appArm   v1.Image
	appAmdDigest     string
	appArmDigest     string
}

func runFor(t testing.TB, version string, p v1.Platform) v1.Image {
	t.Helper()
	img, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	if p.Architecture != "amd64" {
		if img, err = testenv.ForPlatform(img, p); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func digestOf(t testing.TB, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// pushRunIndex publishes a run image index with one child per platform.
func pushRunIndex(t testing.TB, ref string, mt types.MediaType, children map[string]v1.Image) {
	t.Helper()
	var cs []testenv.IndexChild
	for _, arch := range []string{"amd64", "arm64"} {
		if img, ok := children[arch]; ok {
			cs = append(cs, testenv.IndexChild{Image: img, Platform: v1.Platform{OS: "linux", Architecture: arch}})
		}
	}
	if _, err := testenv.PushIndex(context.Background(), ref, mt, cs...); err != nil {
		t.Fatal(err)
	}
}

func newMAWorld(t testing.TB, host, prefix string, mt types.MediaType, withAttestation bool) maWorld {
	t.Helper()
	w := maWorld{run: host + "/" + prefix + "/run:latest", app: host + "/" + prefix + "/app:latest", stable: host + "/" + prefix + "/app:stable",
		runChild: map[string]v1.Image{"amd64": runFor(t, "v1", amd64), "arm64": runFor(t, "v1", arm64)}}
	pushRunIndex(t, w.run, mt, w.runChild)
	amdTag := host + "/" + prefix + "/app-amd64:latest"
	if r := cipackBuild(t, prefix, nil, "--image", amdTag, "--run-image", w.run); r.code != 0 {
		t.Fatalf("build amd64: exit %d\n%s", r.code, r.stderr)
	}
	w.appAmd = testenv.MustPull(t, amdTag)
	cf, _ := w.appAmd.ConfigFile()
	if cf.Architecture != "amd64" {
		t.Fatalf("the lifecycle built %s/%s", cf.OS, cf.Architecture)
	}
	arm, err := testenv.ForPlatform(w.appAmd, arm64)
	if err != nil {
		t.Fatal(err)
	}
	runRepo, _ := name.ParseReference(w.run)
	if w.appArm, err = testenv.WithRunImageReference(arm, runRepo.Context().Digest(digestOf(t, w.runChild["arm64"])).String()); err != nil {
		t.Fatal(err)
	}
	w.appAmdDigest, w.appArmDigest = digestOf(t, w.appAmd), digestOf(t, w.appArm)
	children := []testenv.IndexChild{{Image: w.appAmd, Platform: amd64}, {Image: w.appArm, Platform: arm64}}
	if withAttestation {
		att, err := testenv.Attestation()
		if err != nil {
			t.Fatal(err)
		}
		children = append(children, att)
	}
	if _, err := testenv.PushIndex(context.Background(), w.app, mt, children...); err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(mustTagRef(t, w.stable), mustIndex(t, w.app)); err != nil {
		t.Fatal(err)
	}
	return w
}

func mustIndex(t testing.TB, ref string) v1.ImageIndex {
	t.Helper()
	idx, err := remote.Index(mustRef(t, ref))
	if err != nil {
		t.Fatalf("%s is not an index: %v", ref, err)
	}
	return idx
}

// indexChildren maps platform ("linux/amd64", "unknown/unknown") → digest.
func indexChildren(t testing.TB, ref string) (types.MediaType, map[string]string, map[string]string) {
	t.Helper()
	idx := mustIndex(t, ref)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range im.Manifests {
		out[m.Platform.OS+"/"+m.Platform.Architecture] = m.Digest.String()
	}
	return im.MediaType, out, im.Annotations
}

func (w maWorld) fleet() string {
	return "images:\n  - image: " + w.app + "\n    tags: [" + w.stable + "]\n"
}

func TestMultiArchIndexRebase(t *testing.T) {
	needFixture(t)
	w := newMAWorld(t, fx.Registry.Host, "ma", types.OCIImageIndex, true)
	before := testenv.MustHead(t, w.app)
	_, children, _ := indexChildren(t, w.app)
	if len(children) != 3 {
		t.Fatalf("the app index should have amd64, arm64 and an attestation: %v", children)
	}

	// Nothing moved: up to date for both platforms, nothing pushed.
	r, code, stderr := cipackRebase(t, w.fleet(), nil)
	if v, _, d, _, _ := r.byImage(t, w.app); code != 0 || v != "up-to-date" {
		t.Fatalf("nothing moved: exit %d %s %s\n%s", code, v, d, stderr)
	}
	if testenv.MustHead(t, w.app) != before {
		t.Fatal("an up-to-date index was pushed")
	}

	// Only the amd64 run image moves: the tag stays an index with every
	// child, arm64 and the attestation byte for byte, and amd64 rebased
	// exactly as the lifecycle's rebaser binary rebases that image.
	w.runChild["amd64"] = runFor(t, "v2", amd64)
	pushRunIndex(t, w.run, types.OCIImageIndex, w.runChild)
	r, code, stderr = cipackRebase(t, w.fleet(), nil, "--dry-run")
	if v, reason, d, _, _ := r.byImage(t, w.app); code != 0 || v != "rebase" || reason != "STACK" || !strings.Contains(d, "linux/amd64") || strings.Contains(d, "linux/arm64") {
		t.Fatalf("dry run: exit %d %s %s %q\n%s", code, v, reason, d, stderr)
	}
	if p := r.Images[0].Platforms; len(p) != 2 || p[0].Platform != "linux/amd64" || p[0].Verdict != "rebase" || p[1].Verdict != "up-to-date" {
		t.Fatalf("the report should detail each platform: %+v", p)
	}
	r, code, stderr = cipackRebase(t, w.fleet(), nil)
	if v, _, _, e, nd := r.byImage(t, w.app); code != 0 || v != "rebase" || nd == "" {
		t.Fatalf("rebase: exit %d %s %s\n%s", code, v, e, stderr)
	}
	mt, after, ann := indexChildren(t, w.app)
	if mt != types.OCIImageIndex || ann["org.opencontainers.image.description"] == "" {
		t.Fatalf("the index lost its media type or annotations: %s %v", mt, ann)
	}
	if after["linux/arm64"] != children["linux/arm64"] || after["unknown/unknown"] != children["unknown/unknown"] {
		t.Fatalf("children that did not need a rebase changed:\nbefore %v\nafter  %v", children, after)
	}
	if after["linux/amd64"] == children["linux/amd64"] {
		t.Fatal("the amd64 child was not rebased")
	}
	if testenv.MustHead(t, w.stable) != testenv.MustHead(t, w.app) {
		t.Fatal("stable did not move with latest")
	}
	anchor := fx.Registry.Host + "/ma/amd-by-rebaser:latest"
	if _, err := testenv.Push(context.Background(), anchor, w.appAmd); err != nil {
		t.Fatal(err)
	}
	runRebaserBinary(t, anchor, w.run)
	if d := testenv.MustHead(t, anchor).String(); d != after["linux/amd64"] {
		t.Fatalf("the amd64 child %s differs from the rebaser binary's %s for the same inputs", after["linux/amd64"], d)
	}

	// Both platforms move: both rebased, the attestation kept.
	w.runChild["amd64"], w.runChild["arm64"] = runFor(t, "v3", amd64), runFor(t, "v3", arm64)
	pushRunIndex(t, w.run, types.OCIImageIndex, w.runChild)
	r, code, stderr = cipackRebase(t, w.fleet(), nil)
	if v, _, _, e, _ := r.byImage(t, w.app); code != 0 || v != "rebase" {
		t.Fatalf("both moved: exit %d %s %s\n%s", code, v, e, stderr)
	}
	_, both, _ := indexChildren(t, w.app)
	if both["linux/amd64"] == after["linux/amd64"] || both["linux/arm64"] == after["linux/arm64"] || both["unknown/unknown"] != children["unknown/unknown"] {
		t.Fatalf("both moved: %v → %v", after, both)
	}
	armImg, err := mustIndex(t, w.app).Image(mustHash(t, both["linux/arm64"]))
	if err != nil {
		t.Fatal(err)
	}
	if cf, _ := armImg.ConfigFile(); cf.Architecture != "arm64" {
		t.Fatalf("the arm64 child is %s now", cf.Architecture)
	}
	if r, code, _ := cipackRebase(t, w.fleet(), nil); code != 0 || r.Counts["up-to-date"] != 1 {
		t.Fatalf("the sweep after: exit %d %v", code, r.Counts)
	}
}

func mustHash(t testing.TB, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Single-platform images on a multi-arch run image use the run image of
// their own platform; a platform the run image lacks is a rebuild that
// names it. A Docker manifest list is an index like any other.
func TestMultiArchPlatformsAreMatchedNotDefaulted(t *testing.T) {
	needFixture(t)
	w := newMAWorld(t, fx.Registry.Host, "mb", types.DockerManifestList, false)
	armOnly := fx.Registry.Host + "/mb/arm-only:latest"
	if _, err := testenv.Push(context.Background(), armOnly, w.appArm); err != nil {
		t.Fatal(err)
	}
	fleet := w.fleet() + "  - image: " + armOnly + "\n"
	r, code, stderr := cipackRebase(t, fleet, nil, "--dry-run", "--exit-code")
	if code != 0 || r.Counts["up-to-date"] != 2 {
		t.Fatalf("nothing moved: exit %d %v\n%s", code, r.Counts, stderr)
	}

	// Only arm64 moves, in a Docker manifest list.
	w.runChild["arm64"] = runFor(t, "v2", arm64)
	pushRunIndex(t, w.run, types.DockerManifestList, w.runChild)
	r, code, stderr = cipackRebase(t, fleet, nil)
	if code != 0 || r.Counts["rebase"] != 2 {
		t.Fatalf("arm64 moved: exit %d %v\n%s", code, r.Counts, stderr)
	}
	mt, children, _ := indexChildren(t, w.app)
	if mt != types.DockerManifestList || children["linux/amd64"] != w.appAmdDigest || children["linux/arm64"] == w.appArmDigest {
		t.Fatalf("after the arm64 rebase: %s %v", mt, children)
	}
	if cf := testenv.MustConfig(t, armOnly); cf.Architecture != "arm64" {
		t.Fatalf("the arm64-only image became %s", cf.Architecture)
	}

	// A run image without arm64: the arm64 platforms cannot be rebased.
	delete(w.runChild, "arm64")
	w.runChild["amd64"] = runFor(t, "v3", amd64)
	pushRunIndex(t, w.run, types.DockerManifestList, w.runChild)
	r, _, stderr = cipackRebase(t, fleet, nil, "--dry-run")
	for _, img := range []string{w.app, armOnly} {
		if v, reason, d, _, _ := r.byImage(t, img); v != "rebuild" || reason != "STACK_INCOMPATIBLE" || !strings.Contains(d, "no linux/arm64 image") {
			t.Errorf("%s: %s %s %q, want rebuild naming linux/arm64\n%s", img, v, reason, d, stderr)
		}
	}
}

// A tag of the index that cannot be written: nothing of the image moves.
func TestMultiArchTagsMoveAllOrNone(t *testing.T) {
	needFixture(t)
	var broken atomic.Bool
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{Fault: func(w http.ResponseWriter, r *http.Request) bool {
		if broken.Load() && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/stable") {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}
		return false
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	w := newMAWorld(t, proxy.Host, "mc", types.OCIImageIndex, false)
	before := testenv.MustHead(t, w.app)
	w.runChild["amd64"] = runFor(t, "v2", amd64)
	pushRunIndex(t, w.run, types.OCIImageIndex, w.runChild)
	broken.Store(true)
	r, code, _ := cipackRebase(t, w.fleet(), nil)
	if v, _, _, e, _ := r.byImage(t, w.app); code != exit.SomeFailed || v != "error" {
		t.Fatalf("exit %d %s %s", code, v, e)
	}
	if testenv.MustHead(t, w.app) != before || testenv.MustHead(t, w.stable) != before {
		t.Fatal("a tag moved although stable could not")
	}
}

// cipackManifest runs `cipack manifest`.
func cipackManifest(t *testing.T, args ...string) run {
	t.Helper()
	cmd := exec.Command(fx.Cipack, append([]string{"manifest"}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return run{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}

// Per-arch images from separate jobs become one index; a duplicate
// platform, a non-CNB image or a different source is refused with exit 2
// and nothing pushed.
func TestManifestMergesPerArchBuilds(t *testing.T) {
	needFixture(t)
	h := fx.Registry.Host
	w := newMAWorld(t, h, "merge", types.OCIImageIndex, false)
	amdRef := h + "/merge/app-amd64@" + w.appAmdDigest
	armTag := h + "/merge/app:arm64"
	if _, err := testenv.Push(context.Background(), armTag, w.appArm); err != nil {
		t.Fatal(err)
	}
	target := h + "/merge/multi:latest"
	r := cipackManifest(t, "--image", target, "--tag", h+"/merge/multi:v1", amdRef, armTag)
	if r.code != 0 {
		t.Fatalf("merge: exit %d\n%s", r.code, r.stderr)
	}
	mt, children, _ := indexChildren(t, target)
	if mt != types.OCIImageIndex || children["linux/amd64"] != w.appAmdDigest || children["linux/arm64"] != w.appArmDigest || len(children) != 2 {
		t.Fatalf("index %s %v, want the two source digests", mt, children)
	}
	d := testenv.MustHead(t, target).String()
	if strings.TrimSpace(r.stdout) != h+"/merge/multi@"+d || testenv.MustHead(t, h+"/merge/multi:v1").String() != d {
		t.Fatalf("stdout %q, want the index by digest %s, and v1 on it", r.stdout, d)
	}

	otherSource, err := withLabel(w.appArm, "io.buildpacks.project.metadata", `{"source":{"type":"git","version":{"commit":"0ther"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	other := h + "/merge/app:other-source"
	if _, err := testenv.Push(context.Background(), other, otherSource); err != nil {
		t.Fatal(err)
	}
	refused := h + "/merge/refused:latest"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{amdRef, h + "/merge/app-amd64:latest"}, "are both linux/amd64"},
		{[]string{amdRef, w.run}, "already an index"},
		{[]string{amdRef, fx.RunImage}, "not a CNB image"},
		{[]string{amdRef, other}, "different sources"},
	} {
		r := cipackManifest(t, append([]string{"--image", refused}, c.args...)...)
		if r.code != exit.Usage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s", c.args, r.code, exit.Usage, c.want, r.stderr)
		}
	}
	if got := tags(t, h+"/merge/refused"); len(got) != 0 {
		t.Fatalf("a refused merge pushed %v", got)
	}
	if r := cipackManifest(t, "--image", refused, "--any-source", amdRef, other); r.code != 0 {
		t.Fatalf("--any-source: exit %d\n%s", r.code, r.stderr)
	}
}

func withLabel(img v1.Image, k, v string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config.Labels[k] = v
	return mutate.ConfigFile(img, cf)
}
