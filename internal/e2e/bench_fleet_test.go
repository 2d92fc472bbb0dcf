package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/testenv"
)

// copyImages writes img under each ref, n at a time.
func copyImages(b *testing.B, img v1.Image, refs []string, n int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, n)
	for _, ref := range refs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := name.ParseReference(ref)
			if err == nil {
				err = remote.Write(r, img)
			}
			if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkShardedSweep sweeps a fleet of 10,000 app images over 20 run
// images, nothing moved, on a simulated registry (go-containerregistry's
// in-memory one, on 127.0.0.1, counting requests): whole `cipack rebase`
// processes for N = 1, 4 and 16 shards run side by side. Goals: at most 2
// requests per image plus 1 per run image a shard reads, and a wall time
// close to 1/N of one shard's. Two wall times are printed: all N shards
// at once on this machine (bounded by its cores: shards compete with each
// other and with the registry), and shard 1/N alone, as a CI fan-out runs
// it, on its own runner (shardsN-alone/shards1).
func BenchmarkShardedSweep(b *testing.B) {
	needFixture(b)
	const images, runImages = 10000, 20
	var requests atomic.Int64
	mem := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		mem.ServeHTTP(w, r)
	}))
	defer srv.Close()
	h := strings.TrimPrefix(srv.URL, "http://")
	var fleet strings.Builder
	fleet.WriteString("images:\n")
	for k := 0; k < runImages; k++ {
		run := fmt.Sprintf("%s/bench-shards/run%d:latest", fx.Registry.Host, k)
		pushRun(b, run, fmt.Sprintf("shard-v1-%d", k), testenv.StackID)
		app := fmt.Sprintf("%s/bench-shards/built%d:latest", fx.Registry.Host, k)
		if res := cipackBuild(b, "bench-shards", nil, "--image", app, "--run-image", run); res.code != 0 {
			b.Fatalf("build: %s", res.stderr)
		}
		memRun := fmt.Sprintf("%s/run%d:latest", h, k)
		copyImages(b, testenv.MustPull(b, run), []string{memRun}, 1)
		var refs []string
		for i := k; i < images; i += runImages {
			ref := fmt.Sprintf("%s/app%05d:latest", h, i)
			refs = append(refs, ref)
			fmt.Fprintf(&fleet, "  - image: %s\n    runImage: %s\n", ref, memRun)
		}
		copyImages(b, testenv.MustPull(b, app), refs, 32)
	}
	fleetPath := filepath.Join(fx.Dir, "bench-shards-fleet.yaml")
	if err := os.WriteFile(fleetPath, []byte(fleet.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	wall, alone := map[int][]time.Duration{}, map[int][]time.Duration{}
	perImage := map[int]float64{}
	sweep := func(k, n int) {
		out, err := exec.Command(fx.Cipack, "rebase", "--config", fleetPath, "--shard", fmt.Sprintf("%d/%d", k, n), "--jobs", "8").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "up-to-date, 0 rebase") {
			b.Errorf("shard %d/%d: %v\n%s", k, n, err, out[max(0, len(out)-400):])
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, n := range []int{1, 4, 16} {
			requests.Store(0)
			start := time.Now()
			var wg sync.WaitGroup
			for k := 1; k <= n; k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sweep(k, n)
				}()
			}
			wg.Wait()
			wall[n] = append(wall[n], time.Since(start))
			// Each shard reads each run image's manifest and config once.
			perImage[n] = float64(requests.Load()-int64(2*n*runImages)) / images
			start = time.Now()
			sweep(1, n)
			alone[n] = append(alone[n], time.Since(start))
		}
	}
	b.StopTimer()
	one := median(wall[1])
	for _, n := range []int{1, 4, 16} {
		b.ReportMetric(ms(median(wall[n])), fmt.Sprintf("shards%d-ms", n))
		b.ReportMetric(float64(median(wall[n]))/float64(one), fmt.Sprintf("shards%d/shards1", n))
		if n > 1 {
			b.ReportMetric(float64(median(alone[n]))/float64(one), fmt.Sprintf("shards%d-alone/shards1", n))
			b.ReportMetric(1/float64(n), fmt.Sprintf("goal-shards%d", n))
		}
		b.ReportMetric(perImage[n], fmt.Sprintf("shards%d-requests/image", n))
	}
	b.ReportMetric(2, "goal-requests/image")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkPatchLatency is patch on push, end to end: from a run image's
// push to every affected image rebased, for 1,000 app images on that run
// image in a fleet of 2,000 (the other 1,000 on another run image that
// moved too, and must not be read), through `cipack rebase
// --run-image-changed`, on the loopback registry. Goal: at most 60 s.
func BenchmarkPatchLatency(b *testing.B) {
	needFixture(b)
	const affected = 1000
	h := fx.Registry.Host
	run, other := h+"/bench-patch/run:latest", h+"/bench-patch/other:latest"
	pushRun(b, run, "patch-v1", testenv.StackID)
	pushRun(b, other, "patch-other-v1", testenv.StackID)
	var fleet strings.Builder
	fleet.WriteString("images:\n")
	originals := map[string]v1.Image{}
	var onRun []string
	for _, base := range []string{run, other} {
		app := strings.Replace(base, ":latest", "-app:latest", 1)
		if res := cipackBuild(b, "bench-patch", nil, "--image", app, "--run-image", base); res.code != 0 {
			b.Fatalf("build: %s", res.stderr)
		}
		img := testenv.MustPull(b, app)
		var refs []string
		for i := 0; i < affected; i++ {
			ref := fmt.Sprintf("%s-%04d:latest", strings.TrimSuffix(app, ":latest"), i)
			refs = append(refs, ref)
			fmt.Fprintf(&fleet, "  - image: %s\n    runImage: %s\n", ref, base)
		}
		copyImages(b, img, refs, 32)
		originals[base] = img
		if base == run {
			onRun = refs
		}
	}
	fleetPath := filepath.Join(fx.Dir, "bench-patch-fleet.yaml")
	if err := os.WriteFile(fleetPath, []byte(fleet.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	var latency []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		copyImages(b, originals[run], onRun, 32)
		pushRun(b, run, fmt.Sprintf("patch-v2-%d", i), testenv.StackID)
		pushRun(b, other, fmt.Sprintf("patch-other-v2-%d", i), testenv.StackID)
		b.StartTimer()
		start := time.Now()
		out, err := exec.Command(fx.Cipack, "rebase", "--config", fleetPath, "--run-image-changed", run, "--jobs", "16").CombinedOutput()
		latency = append(latency, time.Since(start))
		if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d images: 0 up-to-date, %d rebase", affected, affected)) {
			b.Fatalf("patch: %v\n%s", err, out[max(0, len(out)-600):])
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(median(latency))/1000, "patch-s")
	b.ReportMetric(60, "goal-s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSkipUnchanged compares a rebuild that nothing changed, with
// --skip-unchanged, to the same rebuild with a warm cache (the anchor):
// whole processes, alternating, in both modes — in the builder (through
// the test's sandbox wrapper, which stands in for a container's volumes
// and costs both sides the same few process starts) and pull mode (the
// default on ubuntu-latest: its cached rebuild runs the phases in
// containers). Goal: at most 0.1.
func BenchmarkSkipUnchanged(b *testing.B) {
	needFixture(b)
	for _, mode := range []string{"in-builder", "pull"} {
		image := fx.Registry.Host + "/bench-skip-" + mode + "/app:latest"
		cache := filepath.Join(fx.Dir, "cache-bench-skip-"+mode)
		m := workspace(b, "bench-skip-"+mode)
		build := func(args ...string) *exec.Cmd {
			args = append([]string{"--image", image, "--cache-dir", cache}, args...)
			if mode == "pull" {
				return exec.Command(fx.Cipack, append([]string{"build", "--path", m.Workspace, "--source-root", m.Workspace,
					"--cnb-dir", filepath.Join(fx.Dir, "no-cnb"), "--builder-cache", filepath.Join(fx.Dir, "bench-skip-builders"),
					"--builder", fx.BuilderImage}, args...)...)
			}
			return fx.CipackBuild(context.Background(), m, args...)
		}
		timeOne := func(args ...string) time.Duration {
			start := time.Now()
			out, err := build(args...).CombinedOutput()
			d := time.Since(start)
			if err != nil {
				b.Fatalf("%s build %v: %v\n%s", mode, args, err, out)
			}
			// Each side did what it is timed for: a skip, a build.
			if skip := strings.Contains(string(out), "the lifecycle does not run"); skip != (len(args) > 0) {
				b.Fatalf("%s build %v: skipped %v\n%s", mode, args, skip, out)
			}
			return d
		}
		timeOne() // the first build, and pull mode's unpack
		var skipped, cached []time.Duration
		for i := 0; i < b.N; i++ {
			skipped = append(skipped, timeOne("--skip-unchanged"))
			cached = append(cached, timeOne())
		}
		b.ReportMetric(ms(median(skipped)), mode+"-skip-ms")
		b.ReportMetric(ms(median(cached)), mode+"-cached-rebuild-ms")
		b.ReportMetric(float64(median(skipped))/float64(median(cached)), mode+"-skip/cached")
	}
	b.ReportMetric(0.1, "goal-ratio")
	b.ReportMetric(0, "ns/op")
}
