package e2e

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// faults decides, per request, whether the proxy misbehaves.
type faults struct {
	mode atomic.Value // "", "transient", "stable-tag-broken"
	mu   sync.Mutex
	seen map[string]int
	hits map[string]int
}

func (f *faults) inject(w http.ResponseWriter, r *http.Request) bool {
	mode, _ := f.mode.Load().(string)
	switch mode {
	case "transient":
		// One logical operation fails once: upload sessions get a fresh
		// URL on every try, so they count under one key.
		path := r.URL.Path
		if i := strings.Index(path, "/blobs/uploads/"); i >= 0 {
			path = path[:i+len("/blobs/uploads/")]
		}
		key := r.Method + " " + path
		f.mu.Lock()
		f.seen[key]++
		n := f.seen[key]
		kind := len(f.seen) % 4 // the n-th distinct request gets the n-th kind of fault
		f.mu.Unlock()
		if n > 1 || r.URL.Path == "/v2/" {
			return false
		}
		// The first time each request is made, misbehave in one of four ways.
		switch kind {
		case 0:
			f.hit("500")
			w.WriteHeader(http.StatusInternalServerError)
		case 1:
			f.hit("429")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			f.hit("slow")
			time.Sleep(300 * time.Millisecond)
			return false
		default:
			f.hit("drop")
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
		}
		return true
	case "stable-tag-broken":
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/stable") {
			f.hit("500")
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}
	}
	return false
}

func (f *faults) hit(kind string) {
	f.mu.Lock()
	f.hits[kind]++
	f.mu.Unlock()
}

func TestRebaseSurvivesRegistryFaults(t *testing.T) {
	needFixture(t)
	f := &faults{seen: map[string]int{}, hits: map[string]int{}}
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{Fault: f.inject})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()

	// Everything is named through the proxy, so every request of the
	// sweep crosses it.
	h := proxy.Host
	run := h + "/faults/run:latest"
	pushRun(t, run, "v1", testenv.StackID)
	apps := []string{h + "/faults/a:latest", h + "/faults/b:latest", h + "/faults/c:latest"}
	for _, app := range apps {
		if r := cipackBuild(t, "faults", nil, "--image", app, "--tag", "stable", "--run-image", run); r.code != 0 {
			t.Fatalf("build %s: %d\n%s", app, r.code, r.stderr)
		}
	}
	fleet := "images:\n"
	for _, app := range apps {
		fleet += "  - image: " + app + "\n    tags: [" + strings.TrimSuffix(app, ":latest") + ":stable]\n"
	}
	pushRun(t, run, "v2", testenv.StackID)

	// Transient faults: every request fails once (500, 429, dropped) or is
	// slow; the sweep retries and completes.
	f.mode.Store("transient")
	r, code, stderr := cipackRebase(t, fleet, nil, "--dry-run")
	if code != 0 || r.Counts["rebase"] != 3 {
		t.Fatalf("dry run through faults: exit %d counts %v\n%s", code, r.Counts, stderr)
	}
	f.mu.Lock()
	t.Logf("faults injected: %v", f.hits)
	if f.hits["500"] == 0 || f.hits["429"] == 0 || f.hits["drop"] == 0 || f.hits["slow"] == 0 {
		t.Errorf("every kind of fault should have been exercised: %v", f.hits)
	}
	f.mu.Unlock()

	// One tag cannot be written: that image fails whole — neither of its
	// tags moves — and the others are rebased.
	f.mode.Store("stable-tag-broken")
	before := map[string]string{}
	for _, app := range apps {
		before[app] = testenv.MustHead(t, app).String()
	}
	r, code, _ = cipackRebase(t, "images:\n  - image: "+apps[0]+"\n    tags: ["+h+"/faults/a:stable]\n  - image: "+apps[1]+"\n", nil)
	if code != exit.SomeFailed {
		t.Fatalf("exit %d, want %d", code, exit.SomeFailed)
	}
	if v, _, _, e, _ := r.byImage(t, apps[0]); v != "error" || !strings.Contains(e, "put back") {
		t.Fatalf("app a: %s %q", v, e)
	}
	if got := testenv.MustHead(t, apps[0]).String(); got != before[apps[0]] {
		t.Fatalf("a:latest moved to %s although a:stable could not: tags half-moved", got)
	}
	if got := testenv.MustHead(t, h+"/faults/a:stable").String(); got != before[apps[0]] {
		t.Fatalf("a:stable moved")
	}
	if v, _, _, _, d := r.byImage(t, apps[1]); v != "rebase" || testenv.MustHead(t, apps[1]).String() != d {
		t.Fatalf("app b should be rebased despite a's failure: %s", v)
	}

	// With the broken tag fixed (transient faults still on, now for the
	// writes too), the next sweep finishes the job: a and c are rebased,
	// and b:stable, which the last sweep (whose fleet did not list it) left
	// on the old base, is found diverged and moved back onto b:latest.
	f.mode.Store("transient")
	r, code, _ = cipackRebase(t, fleet, nil)
	if code != 0 || r.Counts["rebase"] != 3 || r.Counts["up-to-date"] != 0 {
		t.Fatalf("recovery sweep: exit %d counts %v\n%+v", code, r.Counts, r.Images)
	}
	if _, reason, _, _, _ := r.byImage(t, apps[1]); reason != "TAGS_DIVERGED" {
		t.Fatalf("b: reason %s, want TAGS_DIVERGED", reason)
	}
	for _, app := range apps {
		stable := strings.TrimSuffix(app, ":latest") + ":stable"
		if testenv.MustHead(t, stable) != testenv.MustHead(t, app) {
			t.Errorf("%s and %s differ after the recovery sweep", app, stable)
		}
	}
}
