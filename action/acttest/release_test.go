package acttest

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
	"go.yaml.in/yaml/v3"
)

// copyTree copies the files rel (relative to src, directories whole) into dst.
func copyTree(t *testing.T, src, dst string, rel ...string) {
	t.Helper()
	for _, r := range rel {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, r)), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-a", filepath.Join(src, r), filepath.Join(dst, r)).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v\n%s", r, err, out)
		}
	}
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.email=ci@example.invalid", "-c", "user.name=ci"}, args...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// A release commit, as `make release-prep` makes it and the release
// workflow tags it: vX.Y.Z and the major tag on the same commit, which
// records the release (action/release-version, the Tasks' image, the
// CHANGELOG). The action used at that commit's SHA, at @v9.9.9 and at @v1
// installs exactly that release — downloaded over https from a stand-in
// on 127.0.0.1, verified against its checksums, with no Go on PATH — and
// builds with it.
func TestReleaseRefsInstallTheRelease(t *testing.T) {
	needFixture(t)
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Fatalf("release assets exist for amd64 and arm64, not %s", runtime.GOARCH)
	}
	rootDir, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	const version = "v9.9.9"
	dist := t.TempDir()
	mk := exec.Command("make", "-s", "release", "VERSION="+version, "DIST="+dist, "RELEASE_ARCHES="+runtime.GOARCH)
	mk.Dir = rootDir
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	srv := httptest.NewTLSServer(http.StripPrefix("/"+version+"/", http.FileServer(http.Dir(dist))))
	defer srv.Close()
	base := srv.URL
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}

	// The release commit: the action's files, prepared by make release-prep.
	action := filepath.Join(fx.Dir, "action-release-"+version)
	_ = os.RemoveAll(action)
	copyTree(t, rootDir, action, "action.yml", "action/setup-cipack.sh", "action/setup-network.sh", "Makefile", "CHANGELOG.md", "tekton")
	_ = os.Remove(filepath.Join(action, "action", "release-version"))
	git(t, action, "init", "-q", "-b", "main")
	git(t, action, "add", "-A")
	git(t, action, "commit", "-qm", "before the release")
	prep := exec.Command("make", "-s", "release-prep", "VERSION="+version)
	prep.Dir = action
	if out, err := prep.CombinedOutput(); err != nil {
		t.Fatalf("make release-prep: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(filepath.Join(action, "action", "release-version")); string(b) != version+"\n" {
		t.Fatalf("action/release-version is %q, want %s", b, version)
	}
	if b, _ := os.ReadFile(filepath.Join(action, "CHANGELOG.md")); !strings.Contains(string(b), "## [Unreleased]\n\n## ["+version+"] - ") {
		t.Fatalf("CHANGELOG.md's Unreleased was not moved under %s:\n%s", version, b)
	}
	tasks, _ := filepath.Glob(filepath.Join(action, "tekton", "cipack-*.yaml"))
	for _, f := range tasks {
		if b, _ := os.ReadFile(f); !strings.Contains(string(b), "default: ghcr.io/cipack/cipack:"+version+"\n") {
			t.Fatalf("%s does not default to the release's image", f)
		}
	}
	git(t, action, "add", "-A")
	git(t, action, "commit", "-qm", "release "+version)
	git(t, action, "tag", version)
	// What the release workflow does: the major tag on the same commit.
	git(t, action, "tag", "-f", "v1", git(t, action, "rev-parse", version+"^{commit}"))
	sha := git(t, action, "rev-parse", "HEAD")
	if v1 := git(t, action, "rev-parse", "v1^{commit}"); v1 != sha || git(t, action, "rev-parse", version+"^{commit}") != sha {
		t.Fatalf("v1 (%s) and %s are not the release commit %s", v1, version, sha)
	}

	noGo := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, d := range filepath.SplitList(noGo) {
		if _, err := os.Stat(filepath.Join(d, "go")); err == nil {
			t.Fatalf("go is in %s: the test cannot show Go is not used", d)
		}
	}
	for _, ref := range []string{sha, version, "v1"} {
		t.Run(ref, func(t *testing.T) {
			image := fx.Registry.Host + "/release-ref/app:" + strings.ReplaceAll(ref, ".", "-")
			wf := strings.Replace(consumer(`          image: ${{ vars.CIPACK_IMAGE }}
          builder: ${{ vars.CIPACK_BUILDER }}
          insecure-registries: ${{ vars.CIPACK_INSECURE_REGISTRIES }}`), "cipack/cipack@v1", "cipack/cipack@"+ref, 1)
			wf = strings.Replace(wf, `          DIGEST: ${{ steps.cipack.outputs.digest }}
`, `          DIGEST: ${{ steps.cipack.outputs.digest }}
          METADATA: ${{ steps.cipack.outputs.metadata }}
`, 1)
			wf = strings.Replace(wf, `        run: echo "pushed $IMAGE_REF (digest $DIGEST)"`, `        run: |
          echo "pushed $IMAGE_REF (digest $DIGEST)"
          echo "metadata: $(printf '%s' "$METADATA" | tr -d '\n ' | sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p') $(printf '%s' "$METADATA" | tr -d '\n ' | grep -c '"buildpacks":\[{')"
          [ "$(printf '%s' "$METADATA" | tr -d '\n ' | sed -n 's/.*"digest":"\(sha256:[0-9a-f]*\)".*/\1/p')" = "$DIGEST" ] || { echo "metadata digest differs"; exit 1; }
          if command -v go; then echo "go on PATH"; exit 1; fi
          echo "installed: $(find "$RUNNER_TOOL_CACHE/cipack" -name cipack -type f -exec sha256sum {} +)"`, 1)
			r := newRepo(t, map[string]string{".github/workflows/consumer.yml": wf})
			home := filepath.Join(fx.Dir, "home")
			// A runner of its own (act keeps the tool cache under it): each
			// ref's run downloads the release.
			cache, err := os.MkdirTemp(fx.Dir, "act-cache-release-")
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []string{home, cache} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.CommandContext(context.Background(), act, "push",
				"-W", filepath.Join(".github", "workflows", "consumer.yml"),
				"-P", "ubuntu-latest=-self-hosted",
				"--no-cache-server", "--action-offline-mode",
				"--local-repository", "cipack/cipack@"+ref+"="+action,
				"--local-repository", "actions/cache@v5="+cacheStub(),
				"--var", "CIPACK_IMAGE="+image,
				"--var", "CIPACK_BUILDER="+fx.BuilderImage,
				"--var", "CIPACK_INSECURE_REGISTRIES=",
				"--env", "PATH="+noGo,
				"--env", "CIPACK_RELEASE_BASE="+base,
				"--env", "CURL_CA_BUNDLE="+caFile,
				"--action-cache-path", cache)
			cmd.Dir = r.dir
			env := []string{"ACT_DISABLE_VERSION_CHECK=1", "HOME=" + home}
			for _, e := range os.Environ() {
				if !strings.HasPrefix(e, "HOME=") {
					env = append(env, e)
				}
			}
			cmd.Env = append(env, goEnv...)
			out, err := cmd.CombinedOutput()
			log := string(out)
			if err != nil {
				t.Fatalf("act: %v\n%s", err, log)
			}
			want := sha256File(t, filepath.Join(dist, "cipack_linux_"+runtime.GOARCH))
			for _, s := range []string{
				"cipack: installed release " + version + " (verified)",
				"cipack: checked: checksums only",
				"installed: " + want + "  " + filepath.Join(cache, "tool_cache", "cipack", version, runtime.GOARCH, "cipack"),
				"pushed " + fx.Registry.Host + "/release-ref/app",
				// the metadata output: the build's JSON, its digest the digest output's, with buildpacks
				"metadata: sha256:",
			} {
				if !strings.Contains(log, s) {
					t.Errorf("the run lacks %q:\n%s", s, log)
				}
			}
			if strings.Contains(log, "cipack: building from") || strings.Contains(log, "go on PATH") {
				t.Errorf("Go was used:\n%s", log)
			}
		})
	}
}

// The release workflow's signing job, run with act against local
// stand-ins (cosign-installer's cosign records its arguments; the attest
// action prints its subjects): checksums.txt is signed keylessly into
// checksums.txt.sigstore.json, and provenance is attested for every binary
// `make release` built.
func TestReleaseWorkflowSignsAndAttestsTheBinaries(t *testing.T) {
	needFixture(t)
	rootDir, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(t.TempDir(), "cosign-calls")
	event := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(event, []byte(`{"ref":"refs/tags/v9.9.9","ref_name":"v9.9.9"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(fx.Dir, "home")
	cache, err := os.MkdirTemp(fx.Dir, "act-cache-release-wf-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	runRelease := func(dir string) (string, error) {
		cmd := exec.Command(act, "push", "-j", "binaries", "-e", event,
			"-W", filepath.Join(".github", "workflows", "release.yml"),
			"-P", "ubuntu-latest=-self-hosted",
			"--no-cache-server", "--action-offline-mode",
			"--local-repository", "sigstore/cosign-installer@v3="+standIn("release/cosign-installer"),
			"--local-repository", "actions/attest-build-provenance@v3="+standIn("release/attest-build-provenance"),
			"--local-repository", "actions/setup-go@v6="+standIn("release/setup-go"),
			"--local-repository", "actions/upload-artifact@v4="+standIn("release/upload-artifact"),
			"--env", "COSIGN_RECORD="+record,
			"--action-cache-path", cache)
		cmd.Dir = dir
		env := []string{"ACT_DISABLE_VERSION_CHECK=1", "HOME=" + home}
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "HOME=") {
				env = append(env, e)
			}
		}
		cmd.Env = append(env, goEnv...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// A tag on a commit make release-prep did not prepare: the check job
	// fails, naming each file, and nothing is built or signed.
	unprepared := filepath.Join(fx.Dir, "release-wf-unprepared")
	_ = os.RemoveAll(unprepared)
	copyTree(t, rootDir, unprepared, ".github", "tekton", "CHANGELOG.md", "Makefile")
	_ = os.Remove(filepath.Join(unprepared, "action", "release-version"))
	git(t, unprepared, "init", "-q", "-b", "main")
	git(t, unprepared, "add", "-A")
	git(t, unprepared, "commit", "-qm", "not prepared")
	log, err := runRelease(unprepared)
	if err == nil || !strings.Contains(log, "::error file=action/release-version::action/release-version does not name v9.9.9") ||
		!strings.Contains(log, "::error file=CHANGELOG.md::CHANGELOG.md has no '## [v9.9.9]' section") ||
		!strings.Contains(log, "::error file=tekton/cipack-build.yaml::the CIPACK_IMAGE default is not ghcr.io/cipack/cipack:v9.9.9") ||
		strings.Contains(log, "Binaries and checksums") {
		t.Fatalf("an unprepared tag must fail the check job: %v\n%s", err, log)
	}
	if _, err := os.Stat(record); err == nil {
		t.Fatal("cosign was called for an unprepared tag")
	}

	// The release commit: this module, prepared by make release-prep.
	prepared := filepath.Join(fx.Dir, "release-wf-prepared")
	_ = os.RemoveAll(prepared)
	files := strings.Fields(git(t, rootDir, "ls-files", "-co", "--exclude-standard"))
	var keep []string
	for _, f := range files {
		if _, err := os.Lstat(filepath.Join(rootDir, f)); err == nil && !strings.HasPrefix(f, "bin/") && !strings.HasPrefix(f, "dist/") {
			keep = append(keep, f)
		}
	}
	copyTree(t, rootDir, prepared, keep...)
	prep := exec.Command("make", "-s", "release-prep", "VERSION=v9.9.9")
	prep.Dir = prepared
	if out, err := prep.CombinedOutput(); err != nil {
		t.Fatalf("make release-prep: %v\n%s", err, out)
	}
	git(t, prepared, "init", "-q", "-b", "main")
	git(t, prepared, "add", "-A")
	git(t, prepared, "commit", "-qm", "release v9.9.9")
	log, err = runRelease(prepared)
	if err != nil {
		t.Fatalf("act: %v\n%s", err, log)
	}
	calls, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("cosign was not called: %v\n%s", err, log)
	}
	if want := "sign-blob\n--yes\n--bundle\ndist/checksums.txt.sigstore.json\ndist/checksums.txt\n\n"; string(calls) != want {
		t.Fatalf("cosign calls:\n%s\nwant:\n%s", calls, want)
	}
	for _, b := range releaseBins {
		for _, arch := range []string{"amd64", "arm64"} {
			if !strings.Contains(log, "provenance stand-in - subject-path=dist/"+b+"_linux_"+arch+" sha256=") {
				t.Errorf("no provenance for dist/%s_linux_%s:\n%s", b, arch, log)
			}
		}
	}
	if !strings.Contains(log, "upload stand-in - dist: checksums.txt.sigstore.json") {
		t.Errorf("the signature bundle is not among the uploaded assets:\n%s", log)
	}
}

// The release workflow's permissions are per job and least-privilege, and
// the image job signs and attests the image by the digest ko printed (the
// image job needs ghcr.io and is not run here; its steps are checked).
func TestReleaseWorkflowPermissionsAndImageSigning(t *testing.T) {
	rootDir, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(rootDir, ".github", "workflows", "release.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Permissions map[string]string `yaml:"permissions"`
		Jobs        map[string]struct {
			Permissions map[string]string `yaml:"permissions"`
			Steps       []struct {
				ID   string            `yaml:"id"`
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				Env  map[string]string `yaml:"env"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	if len(wf.Permissions) != 0 {
		t.Errorf("workflow-level permissions %v: grant them per job", wf.Permissions)
	}
	// Who may hold each write permission.
	allowed := map[string][]string{
		"contents:write":     {"publish"},
		"packages:write":     {"image"},
		"id-token:write":     {"binaries", "image"},
		"attestations:write": {"binaries", "image"},
	}
	for name, job := range wf.Jobs {
		if job.Permissions == nil {
			t.Errorf("job %s has no permissions block", name)
		}
		for p, v := range job.Permissions {
			if v == "read" || v == "none" {
				continue
			}
			if !slices.Contains(allowed[p+":"+v], name) {
				t.Errorf("job %s has %s: %s", name, p, v)
			}
		}
		for _, s := range job.Steps {
			if s.Uses != "" && !strings.Contains(s.Uses, "@v") {
				t.Errorf("job %s uses %s unpinned", name, s.Uses)
			}
		}
	}
	for p, jobs := range allowed {
		k, v, _ := strings.Cut(p, ":")
		for _, j := range jobs {
			if wf.Jobs[j].Permissions[k] != v {
				t.Errorf("job %s lacks %s: %s", j, k, v)
			}
		}
	}
	img := wf.Jobs["image"]
	var signed, provenance, sbom bool
	for _, s := range img.Steps {
		switch {
		case strings.Contains(s.Run, "cosign sign --yes \"$NAME@$DIGEST\""):
			signed = s.Env["DIGEST"] == "${{ steps.ko.outputs.digest }}" && s.Env["NAME"] == "${{ steps.ko.outputs.name }}"
		case s.Uses == "actions/attest-build-provenance@v3":
			provenance = s.With["subject-digest"] == "${{ steps.ko.outputs.digest }}" && s.With["subject-name"] == "${{ steps.ko.outputs.name }}" && s.With["push-to-registry"] == "true"
		case s.Uses == "actions/attest-sbom@v3":
			sbom = s.With["subject-digest"] == "${{ steps.ko.outputs.digest }}" && s.With["sbom-path"] == "${{ steps.ko.outputs.sbom }}" && s.With["push-to-registry"] == "true"
		case s.ID == "ko":
			if !strings.Contains(s.Run, "--sbom spdx") || !strings.Contains(s.Run, `digest="${ref##*@}"`) {
				t.Errorf("the ko step does not push an SBOM and output the digest it printed:\n%s", s.Run)
			}
		}
	}
	if !signed || !provenance || !sbom {
		t.Errorf("image job: cosign sign by digest %v, provenance %v, SBOM attestation %v", signed, provenance, sbom)
	}
	var tagMoved bool
	for _, s := range wf.Jobs["publish"].Steps {
		if strings.Contains(s.Run, `git tag -f "$major" "$SHA"`) && s.Env["SHA"] == "${{ github.sha }}" && !strings.Contains(s.Run, "git commit") {
			tagMoved = true
		}
	}
	if !tagMoved {
		t.Error("publish does not point the major tag at the release's own commit")
	}
}
