package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

func TestBuildExampleAppPushesRunnableImage(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/e2e/app:latest"
	// Inputs as the CI packagings pass them: CIPACK_* variables, the env
	// list one entry per line, a value holding '='.
	r := cipackBuild(t, "app", []string{
		"CIPACK_IMAGE=" + image,
		"CIPACK_ENV=GREETING=a=b=c\nOTHER=x",
		"CIPACK_TAG=v1",
		"CIPACK_OUTPUT=json",
	}, "--process-type", "web", "--cache-dir", filepath.Join(fx.Dir, "cache-app"))
	if r.code != 0 {
		t.Fatalf("cipack build exited %d\n%s", r.code, r.stderr)
	}
	res := mustJSON(t, r.stdout)
	if got := testenv.MustHead(t, image).String(); got != res.Digest {
		t.Fatalf("registry digest %s, cipack said %s", got, res.Digest)
	}
	if got := testenv.MustHead(t, fx.Registry.Host+"/e2e/app:v1").String(); got != res.Digest {
		t.Fatalf("tag v1 digest %s, want %s", got, res.Digest)
	}
	if !strings.HasSuffix(res.ImageRef, "@"+res.Digest) || res.PlatformAPI != "0.15" {
		t.Fatalf("unexpected result %+v", res)
	}
	if len(res.Buildpacks) != 2 || res.Buildpacks[0].ID != "cipack-examples/shell" {
		t.Fatalf("buildpacks in result: %+v", res.Buildpacks)
	}
	if !strings.Contains(r.stderr, "===> EXPORTING") || strings.Contains(r.stdout, "EXPORTING") {
		t.Fatalf("lifecycle logs must go to stderr only; stdout:\n%s", r.stdout)
	}

	cf := testenv.MustConfig(t, image)
	var md struct {
		RunImage struct {
			Reference string `json:"reference"`
			Image     string `json:"image"`
			TopLayer  string `json:"topLayer"`
		} `json:"runImage"`
	}
	if err := json.Unmarshal([]byte(cf.Config.Labels["io.buildpacks.lifecycle.metadata"]), &md); err != nil {
		t.Fatalf("lifecycle metadata label: %v", err)
	}
	if md.RunImage.Image != fx.RunImage || md.RunImage.Reference == "" || md.RunImage.TopLayer == "" {
		t.Fatalf("runImage metadata = %+v, want image %s with reference and top layer", md.RunImage, fx.RunImage)
	}
	if !strings.Contains(cf.Config.Labels["io.buildpacks.build.metadata"], "cipack-examples/cache") {
		t.Fatalf("build metadata lacks the buildpacks: %s", cf.Config.Labels["io.buildpacks.build.metadata"])
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/cnb/process/web" {
		t.Fatalf("entrypoint %q, want /cnb/process/web (--process-type web)", got)
	}

	out, err := testenv.RunImageProcess(t.Context(), res.ImageRef, "web", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Hello from cipack! GREETING=a=b=c") || !strings.Contains(out, "base: v1") {
		t.Fatalf("the image printed:\n%s", out)
	}
}

func TestWarmRebuildReusesCacheAndKeepsDigest(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/e2e/warm:latest"
	cache := filepath.Join(fx.Dir, "cache-warm")
	first := cipackBuild(t, "warm1", nil, "--image", image, "--cache-dir", cache)
	if first.code != 0 {
		t.Fatalf("first build exited %d\n%s", first.code, first.stderr)
	}
	if !strings.Contains(first.stderr, "created cache layer") {
		t.Fatalf("first build should create the cache layer:\n%s", first.stderr)
	}
	second := cipackBuild(t, "warm2", nil, "--image", image, "--cache-dir", cache)
	if second.code != 0 {
		t.Fatalf("second build exited %d\n%s", second.code, second.stderr)
	}
	if !strings.Contains(second.stderr, "reused cached layer") {
		t.Fatalf("second build should reuse the cache layer:\n%s", second.stderr)
	}
	if a, b := strings.TrimSpace(first.stdout), strings.TrimSpace(second.stdout); a != b || a == "" {
		t.Fatalf("nothing changed, yet the digest moved: %s → %s", a, b)
	}
	// A default build forces no process type: no entrypoint is chosen.
	if ep := testenv.MustConfig(t, image).Config.Entrypoint; len(ep) != 1 || ep[0] != "/cnb/lifecycle/launcher" {
		t.Fatalf("entrypoint %v, want the launcher with no default process", ep)
	}
}

// Credentials from a docker config reach both cipack's checks and the
// lifecycle (as CNB_REGISTRY_AUTH, resolved before it drops privileges):
// the whole build goes through a registry that demands them.
func TestDockerConfigCredentialsReachTheLifecycle(t *testing.T) {
	needFixture(t)
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{User: "builder", Password: "s3cret-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	cfgDir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("builder:s3cret-pw"))
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+proxy.Host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	run := proxy.Host + "/authed/run:v1"
	img, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "authed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.Push(t.Context(), fx.Registry.Host+"/authed/run:v1", img); err != nil {
		t.Fatal(err)
	}
	image := proxy.Host + "/authed/app:latest"
	r := cipackBuild(t, "authed", []string{"DOCKER_CONFIG=" + cfgDir}, "--image", image, "--run-image", run)
	if r.code != 0 {
		t.Fatalf("build through an authenticating registry: %d\n%s", r.code, r.stderr)
	}
	if got := strings.TrimSpace(r.stdout); !strings.HasSuffix(got, "@"+testenv.MustHead(t, fx.Registry.Host+"/authed/app:latest").String()) {
		t.Fatalf("printed %q", got)
	}
	if strings.Contains(r.stderr, "s3cret-pw") || strings.Contains(r.stderr, auth) {
		t.Fatal("credentials reached the log")
	}
}

// The same warm rebuild with the cache kept in an image instead of a dir.
func TestCacheImageKeepsTheCacheBetweenBuilds(t *testing.T) {
	needFixture(t)
	image, cache := fx.Registry.Host+"/e2e/cached:latest", fx.Registry.Host+"/e2e/cached-cache:latest"
	first := cipackBuild(t, "ci1", nil, "--image", image, "--cache-image", cache)
	if first.code != 0 || !strings.Contains(first.stderr, "created cache layer") {
		t.Fatalf("first build: %d\n%s", first.code, first.stderr)
	}
	if len(tags(t, fx.Registry.Host+"/e2e/cached-cache")) == 0 {
		t.Fatal("no cache image was written")
	}
	second := cipackBuild(t, "ci2", nil, "--image", image, "--cache-image", cache)
	if second.code != 0 || !strings.Contains(second.stderr, "reused cached layer") {
		t.Fatalf("second build should restore the layer from the cache image: %d\n%s", second.code, second.stderr)
	}
	if first.stdout != second.stdout {
		t.Fatalf("digest moved: %s → %s", first.stdout, second.stdout)
	}
}

// --sbom-dir gets the build's SBOM files, laid out like pack's
// --sbom-output-dir, and they parse as CycloneDX and SPDX; the source
// given becomes the image's project metadata.
func TestSBOMExportAndSourceMetadata(t *testing.T) {
	needFixture(t)
	sbom := filepath.Join(fx.Dir, "sbom-"+randSuffix())
	image := fx.Registry.Host + "/supply/app:latest"
	const commit = "0123456789abcdef0123456789abcdef01234567"
	r := cipackBuild(t, "sbom", nil, "--image", image, "--sbom-dir", sbom, "--output", "json",
		"--source-repository", "https://git.example/team/app", "--source-commit", commit)
	if r.code != 0 {
		t.Fatalf("build: %d\n%s", r.code, r.stderr)
	}
	res := mustJSON(t, r.stdout)
	if res.Name != fx.Registry.Host+"/supply/app" {
		t.Errorf("name %q, want the image without tag", res.Name)
	}
	layer := filepath.Join(sbom, "launch", "cipack-examples_shell", "web")
	var cdx struct {
		BOMFormat string `json:"bomFormat"`
	}
	var spdx struct {
		SPDXVersion string `json:"spdxVersion"`
	}
	for file, v := range map[string]any{"sbom.cdx.json": &cdx, "sbom.spdx.json": &spdx} {
		b, err := os.ReadFile(filepath.Join(layer, file))
		if err != nil {
			out, _ := exec.Command("find", sbom).CombinedOutput()
			t.Fatalf("%s: %v\n%s", file, err, out)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s is not JSON: %v", file, err)
		}
	}
	if cdx.BOMFormat != "CycloneDX" || !strings.HasPrefix(spdx.SPDXVersion, "SPDX-") {
		t.Fatalf("cdx %+v spdx %+v", cdx, spdx)
	}
	label := testenv.MustConfig(t, image).Config.Labels["io.buildpacks.project.metadata"]
	if !strings.Contains(label, commit) || !strings.Contains(label, "https://git.example/team/app") || !strings.Contains(label, `"type":"git"`) {
		t.Fatalf("project metadata %s", label)
	}
}

// A rebase keeps the project metadata (the lifecycle's Rebaser keeps the
// labels), the report shows it, and the GitHub outputs list exactly the
// pushed images as attestation subjects.
func TestRebaseKeepsSourceAndListsSubjects(t *testing.T) {
	needFixture(t)
	run := fx.Registry.Host + "/supply-rebase/run:latest"
	pushRun(t, run, "v1", testenv.StackID)
	app, steady := fx.Registry.Host+"/supply-rebase/app:latest", fx.Registry.Host+"/supply-rebase/steady:latest"
	const commit = "fedcba9876543210fedcba9876543210fedcba98"
	if r := cipackBuild(t, "src", nil, "--image", app, "--run-image", run, "--source-repository", "https://git.example/team/app", "--source-commit", commit); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	if r := cipackBuild(t, "src2", nil, "--image", steady); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	pushRun(t, run, "v2", testenv.StackID)
	out := filepath.Join(t.TempDir(), "github-output")
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, code, stderr := cipackRebase(t, "images:\n  - image: "+app+"\n  - image: "+steady+"\n", []string{"GITHUB_ACTIONS=true", "GITHUB_OUTPUT=" + out})
	if code != 0 {
		t.Fatalf("rebase: %d\n%s", code, stderr)
	}
	newDigest := testenv.MustHead(t, app).String()
	if label := testenv.MustConfig(t, app).Config.Labels["io.buildpacks.project.metadata"]; !strings.Contains(label, commit) {
		t.Fatalf("the rebased image lost its project metadata: %q", label)
	}
	var source string
	for _, o := range rep.Images {
		if o.Image == app {
			source = o.Source
		}
	}
	if source != "https://git.example/team/app@"+commit {
		t.Fatalf("report source %q", source)
	}
	b, _ := os.ReadFile(out)
	m := regexp.MustCompile(`(?s)moved-json<<(\S+)\n(.*?)\n(\S+)\n`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no moved-json output in %s", b)
	}
	var subjects []struct {
		Name, Digest string
		Tags         []string
	}
	if err := json.Unmarshal([]byte(m[2]), &subjects); err != nil {
		t.Fatalf("moved-json %q: %v", m[2], err)
	}
	if len(subjects) != 1 || subjects[0].Name != fx.Registry.Host+"/supply-rebase/app" || subjects[0].Digest != newDigest {
		t.Fatalf("moved-json %+v, want exactly the rebased app at %s", subjects, newDigest)
	}
}

// project.toml is applied as pack applies it: exclude changes what the
// image's /workspace holds (the checkout is untouched), the build env
// reaches the buildpack (--env still wins), the group is the order,
// a post group beside a group is warned about; a buildpack the builder lacks and a
// broken file fail with exit 2 and nothing pushed.
func TestProjectDescriptor(t *testing.T) {
	needFixture(t)
	m := workspace(t, "project")
	descriptor := `[_]
schema-version = "0.2"

[io.buildpacks]
exclude = ["*.secret"]

[[io.buildpacks.group]]
id = "cipack-examples/shell"

[[io.buildpacks.build.env]]
name = "GREETING"
value = "from-project"

[[io.buildpacks.post.group]]
id = "x/post"
`
	if err := os.WriteFile(filepath.Join(m.Workspace, "project.toml"), []byte(descriptor), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.Workspace, "db.secret"), []byte("not for the image"), 0o644); err != nil {
		t.Fatal(err)
	}
	image := fx.Registry.Host + "/project/app:latest"
	r := cipackBuildIn(t, m, nil, "--image", image, "--process-type", "web")
	if r.code != 0 {
		t.Fatalf("build: %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "the pre and post buildpacks are not used: a group replaces the builder's order") {
		t.Errorf("no warning for the post group a group makes useless:\n%s", r.stderr)
	}
	files := imageFiles(t, image)
	if strings.Contains(files, "db.secret") || !strings.Contains(files, "workspace/app.sh") {
		t.Errorf("exclude was not applied to the image's /workspace:\n%s", files)
	}
	if _, err := os.Stat(filepath.Join(m.Workspace, "db.secret")); err != nil {
		t.Errorf("the checkout was changed: %v", err)
	}
	if label := testenv.MustConfig(t, image).Config.Labels["io.buildpacks.build.metadata"]; !strings.Contains(label, "cipack-examples/shell") || strings.Contains(label, "cipack-examples/cache") {
		t.Errorf("the group should be the order (shell only): %s", label)
	}
	out, err := testenv.RunImageProcess(context.Background(), image, "web", filepath.Join(fx.Dir, "project-run-"+randSuffix()))
	if err != nil || !strings.Contains(out, "GREETING=from-project") {
		t.Fatalf("the build env did not reach the buildpack: %q %v", out, err)
	}
	r = cipackBuildIn(t, m, nil, "--image", image, "--process-type", "web", "--env", "GREETING=from-flag")
	if out, _ := testenv.RunImageProcess(context.Background(), image, "web", filepath.Join(fx.Dir, "project-run-"+randSuffix())); r.code != 0 || !strings.Contains(out, "GREETING=from-flag") {
		t.Fatalf("--env should win over project.toml: %d %q", r.code, out)
	}

	repo := fx.Registry.Host + "/project/refused"
	for body, want := range map[string]string{
		"[_]\nschema-version = \"0.2\"\n[[io.buildpacks.group]]\nid = \"x/unknown\"\n": "no buildpack x/unknown",
		"[io.buildpacks\nexclude = []\n":                                               "project.toml:",
	} {
		if err := os.WriteFile(filepath.Join(m.Workspace, "project.toml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		r := cipackBuildIn(t, m, nil, "--image", repo+":latest")
		if r.code != exit.Usage || !strings.Contains(r.stderr, want) {
			t.Errorf("%q: exit %d, want %d with %q\n%s", body, r.code, exit.Usage, want, r.stderr)
		}
	}
	if got := tags(t, repo); len(got) != 0 {
		t.Fatalf("a refused build pushed %v", got)
	}
}
