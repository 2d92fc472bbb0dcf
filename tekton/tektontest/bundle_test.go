package tektontest

import (
	"context"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/remote/oci"
	bundleresolver "github.com/tektoncd/pipeline/pkg/resolution/resolver/bundle"
	"sigs.k8s.io/yaml"
)

// loopbackRegistry is go-containerregistry's in-process registry on a
// free port of 127.0.0.1, stopped when the test ends.
func loopbackRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return l.Addr().String()
}

// `make tekton-bundle` (the release's target) pushes the Tasks' bundle
// and prints it by digest; Tekton's own bundle code (the bundles
// resolver's GetEntry, and pkg/remote/oci) finds every Task in it, and
// each comes back as the file it was made from and passes validation.
func TestTektonBundle(t *testing.T) {
	host := loopbackRegistry(t)
	tag := host + "/cipack/tekton-bundle:test"
	mk := exec.Command("make", "-s", "tekton-bundle", "TEKTON_BUNDLE="+tag, "TEKTON_BUNDLE_FLAGS=--insecure")
	mk.Dir = root
	var stderr strings.Builder
	mk.Stderr = &stderr
	out, err := mk.Output()
	if err != nil {
		t.Fatalf("make tekton-bundle: %v\n%s", err, stderr.String())
	}
	pinned := strings.TrimSpace(string(out))
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(host+"/cipack/tekton-bundle") + `@sha256:[0-9a-f]{64}$`).MatchString(pinned) {
		t.Fatalf("make tekton-bundle printed %q, not the bundle by digest", pinned)
	}
	r, _ := name.ParseReference(tag)
	d, err := remote.Head(r)
	if err != nil || !strings.HasSuffix(pinned, "@"+d.Digest.String()) {
		t.Fatalf("the tag is at %v (%v), printed %s", d, err, pinned)
	}

	files, _ := filepath.Glob(filepath.Join(root, "tekton", "cipack-*.yaml"))
	if len(files) < 3 {
		t.Fatalf("Tasks: %v", files)
	}
	ctx := context.Background()
	listed, err := oci.NewResolver(pinned, authn.DefaultKeychain).List(ctx)
	if err != nil {
		t.Fatalf("pkg/remote/oci List: %v", err)
	}
	if len(listed) != len(files) {
		t.Fatalf("the bundle lists %v; want the %d Tasks", listed, len(files))
	}
	for _, f := range files {
		want := loadTask(t, filepath.Base(f))
		t.Run(want.Name, func(t *testing.T) {
			entry, err := bundleresolver.GetEntry(ctx, authn.DefaultKeychain, bundleresolver.RequestOptions{Bundle: pinned, EntryName: want.Name, Kind: "task"})
			if err != nil {
				t.Fatalf("the bundles resolver: %v", err)
			}
			if entry.RefSource().EntryPoint != want.Name || !strings.HasSuffix(pinned, entry.RefSource().Digest["sha256"]) {
				t.Fatalf("RefSource %+v", entry.RefSource())
			}
			var got v1.Task
			if err := yaml.UnmarshalStrict(entry.Data(), &got); err != nil {
				t.Fatalf("the resolved Task: %v", err)
			}
			got.SetDefaults(ctx)
			if !reflect.DeepEqual(got.Spec, want.Spec) || got.Name != want.Name || !reflect.DeepEqual(got.Annotations, want.Annotations) {
				g, _ := yaml.Marshal(got)
				w, _ := yaml.Marshal(want)
				t.Fatalf("the bundle's %s differs from %s:\n%s\nwant:\n%s", want.Name, f, g, w)
			}
			validateTekton(t, want.Name+" from the bundle", got.DeepCopy())
			obj, _, err := oci.NewResolver(pinned, authn.DefaultKeychain).Get(ctx, "task", want.Name)
			if err != nil {
				t.Fatalf("pkg/remote/oci Get: %v", err)
			}
			if task, ok := obj.(*v1.Task); !ok || task.Name != want.Name {
				t.Fatalf("pkg/remote/oci returned %T", obj)
			}
		})
	}
	// The same files make the same bundle: a release can be checked.
	again, err := exec.Command("make", "-s", "-C", root, "tekton-bundle", "TEKTON_BUNDLE="+host+"/cipack/tekton-bundle:again", "TEKTON_BUNDLE_FLAGS=--insecure").Output()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(again)), pinned[strings.Index(pinned, "@"):]) {
		t.Fatalf("a second bundle of the same files: %s %v, first %s", again, err, pinned)
	}
}

// The resolver examples name Tasks that exist: the bundles resolver's by
// name, pinned by digest; the git resolver's by their path in this
// repository.
func TestResolverExamplesNameTheTasks(t *testing.T) {
	runs := docs(t, filepath.Join(root, "examples", "tekton", "resolvers.yaml"))
	seen := map[string]int{}
	for i, d := range runs {
		var tr v1.TaskRun
		strict(t, "resolvers.yaml", d, &tr)
		if tr.Spec.TaskRef == nil {
			t.Fatalf("resolvers.yaml#%d has no taskRef", i)
		}
		p := map[string]string{}
		for _, param := range tr.Spec.TaskRef.Params {
			p[param.Name] = param.Value.StringVal
		}
		resolver := string(tr.Spec.TaskRef.Resolver)
		seen[resolver]++
		switch resolver {
		case "bundles":
			if !regexp.MustCompile(`@sha256:[0-9a-f]{64}$`).MatchString(p["bundle"]) || p["kind"] != "task" {
				t.Errorf("resolvers.yaml#%d: bundle %q kind %q: pin the bundle by digest", i, p["bundle"], p["kind"])
			}
			if task := loadTask(t, p["name"]+".yaml"); task.Name != p["name"] {
				t.Errorf("resolvers.yaml#%d: no Task %s", i, p["name"])
			}
		case "git":
			file, ok := strings.CutPrefix(p["pathInRepo"], "tekton/")
			if !ok || p["url"] == "" || p["revision"] == "" {
				t.Fatalf("resolvers.yaml#%d: git params %v", i, p)
			}
			loadTask(t, file)
		default:
			t.Errorf("resolvers.yaml#%d: resolver %q", i, resolver)
		}
	}
	if seen["bundles"] == 0 || seen["git"] == 0 {
		t.Fatalf("resolvers seen: %v", seen)
	}
}

// Every Task has its Artifact Hub metadata (tekton/artifacthub/NAME/
// artifacthub-pkg.yml), and it says what the Task says: name, version
// (the Task's app.kubernetes.io/version, as semver), display name, and its
// tekton.dev/tags among the keywords.
func TestArtifactHubMetadata(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(root, "tekton", "cipack-*.yaml"))
	dirs, _ := filepath.Glob(filepath.Join(root, "tekton", "artifacthub", "*"))
	if len(dirs) != len(files) {
		t.Errorf("%d Tasks, %d Artifact Hub packages", len(files), len(dirs))
	}
	for _, f := range files {
		task := loadTask(t, filepath.Base(f))
		b, err := os.ReadFile(filepath.Join(root, "tekton", "artifacthub", task.Name, "artifacthub-pkg.yml"))
		if err != nil {
			t.Errorf("Task %s: %v", task.Name, err)
			continue
		}
		var pkg struct {
			Version     string   `json:"version"`
			Name        string   `json:"name"`
			DisplayName string   `json:"displayName"`
			CreatedAt   string   `json:"createdAt"`
			Description string   `json:"description"`
			HomeURL     string   `json:"homeURL"`
			License     string   `json:"license"`
			Keywords    []string `json:"keywords"`
			Links       []struct {
				Name string `json:"name"`
				URL  string `json:"url"`
			} `json:"links"`
			Install string `json:"install"`
		}
		strict(t, task.Name+" artifacthub-pkg.yml", b, &pkg)
		if pkg.Name != task.Name || pkg.Version != task.Labels["app.kubernetes.io/version"]+".0" || pkg.DisplayName != task.Annotations["tekton.dev/displayName"] {
			t.Errorf("%s: artifacthub-pkg.yml says %s %s %q", task.Name, pkg.Name, pkg.Version, pkg.DisplayName)
		}
		if _, err := time.Parse(time.RFC3339, pkg.CreatedAt); err != nil || pkg.Description == "" || pkg.HomeURL == "" || pkg.License != "Apache-2.0" || !strings.Contains(pkg.Install, "value: "+task.Name+"\n") {
			t.Errorf("%s: createdAt %q (%v), description, homeURL, license Apache-2.0 and install are needed", task.Name, pkg.CreatedAt, err)
		}
		for _, tag := range strings.Split(task.Annotations["tekton.dev/tags"], ",") {
			if !slices.Contains(pkg.Keywords, strings.TrimSpace(tag)) {
				t.Errorf("%s: keyword %q missing", task.Name, tag)
			}
		}
		for _, l := range pkg.Links {
			if file, ok := strings.CutPrefix(l.URL, "https://github.com/cipack/cipack/blob/main/"); ok {
				if _, err := os.Stat(filepath.Join(root, file)); err != nil {
					t.Errorf("%s: link %s: %v", task.Name, l.URL, err)
				}
			}
		}
	}
}
