package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipack/cipack/internal/testenv"
)

// BenchmarkNoDriftIndexSweep checks 100 app indexes (linux/amd64 built by
// the lifecycle, linux/arm64 synthesized) on one multi-arch run image,
// where nothing moved, through a counting proxy. The budget is 1 request
// per index, 2 per child (manifest, config), and for the run image its
// index once and 2 per child (manifest, config: the layers each app
// child records are checked against them).
func BenchmarkNoDriftIndexSweep(b *testing.B) {
	needFixture(b)
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer proxy.Close()
	const images, platforms = 100, 2
	w := newMAWorld(b, proxy.Host, "bench-ma", types.OCIImageIndex, false)
	idx := mustIndex(b, w.app)
	var refs []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := 0; i < images; i++ {
		ref := fmt.Sprintf("%s/bench-ma/app%03d:latest", proxy.Host, i)
		refs = append(refs, ref)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, _ := name.ParseReference(ref)
			if err := remote.WriteIndex(r, idx); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	var fleet strings.Builder
	fleet.WriteString("images:\n")
	for _, r := range refs {
		fleet.WriteString("  - image: " + r + "\n")
	}
	fleetPath := filepath.Join(fx.Dir, "bench-ma-fleet.yaml")
	if err := os.WriteFile(fleetPath, []byte(fleet.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	var times []time.Duration
	var requests int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		proxy.Reset()
		start := time.Now()
		out, err := exec.Command(fx.Cipack, "rebase", "--config", fleetPath).CombinedOutput()
		times = append(times, time.Since(start))
		if err != nil || !strings.Contains(string(out), "100 images: 100 up-to-date") {
			b.Fatalf("sweep: %v\n%s", err, out[max(0, len(out)-500):])
		}
		requests = proxy.Requests.Load()
	}
	b.StopTimer()
	budget := images*(1+2*platforms) + 1 + 2*platforms
	b.ReportMetric(ms(median(times)), "cipack-ms")
	b.ReportMetric(float64(requests), "cipack-requests")
	b.ReportMetric(float64(budget), "budget-requests")
	b.ReportMetric(float64(requests)/float64(budget), "requests/budget")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRebaseIndex rebases one 2-platform index whose run image moved
// for both platforms, against the anchor: two runs of the lifecycle's
// rebaser binary, one per platform image (the rebaser takes one image at a
// time and cannot write an index). It also counts layer blobs that crossed
// the registry during cipack's rebase (goal: 0).
func BenchmarkRebaseIndex(b *testing.B) {
	needFixture(b)
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer proxy.Close()
	t := b
	w := newMAWorld(t, proxy.Host, "bench-mr", types.OCIImageIndex, false)
	original := mustIndex(b, w.app)
	w.runChild["amd64"], w.runChild["arm64"] = runFor(t, "v2", amd64), runFor(t, "v2", arm64)
	pushRunIndex(t, w.run, types.OCIImageIndex, w.runChild)
	layerDigests := map[string]bool{}
	for _, img := range []v1.Image{w.appAmd, w.appArm} {
		ls, _ := img.Layers()
		for _, l := range ls {
			d, _ := l.Digest()
			layerDigests[d.String()] = true
		}
	}
	target := proxy.Host + "/bench-mr/by-cipack:latest"
	perArch := map[string]string{"amd64": proxy.Host + "/bench-mr/by-rebaser:amd64", "arm64": proxy.Host + "/bench-mr/by-rebaser:arm64"}
	reset := func() {
		r, _ := name.ParseReference(target)
		if err := remote.WriteIndex(r, original); err != nil {
			b.Fatal(err)
		}
		for arch, img := range map[string]v1.Image{"amd64": w.appAmd, "arm64": w.appArm} {
			r, _ := name.ParseReference(perArch[arch])
			if err := remote.Write(r, img); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportDir := filepath.Join(fx.Dir, "bench-ma-rebaser-report")
	_ = os.MkdirAll(reportDir, 0o777)
	_ = os.Chmod(reportDir, 0o777)
	runDigests := map[string]string{}
	for arch, img := range w.runChild {
		runDigests[arch] = digestOf(t, img)
	}
	rebaser := func(arch string) *exec.Cmd {
		runRepo, _ := name.ParseReference(w.run)
		c := exec.Command(filepath.Join(fx.BuilderDir, "lifecycle", "rebaser"), "-force",
			"-run-image", runRepo.Context().Digest(runDigests[arch]).String(), "-report", filepath.Join(reportDir, "report.toml"),
			"-uid", strconv.Itoa(fx.UID), "-gid", strconv.Itoa(fx.GID), perArch[arch])
		c.Env = append(os.Environ(), "CNB_PLATFORM_API=0.15")
		return c
	}
	var cipackT, rebaserT []time.Duration
	layerBlobs := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		reset()
		proxy.Reset()
		b.StartTimer()
		start := time.Now()
		out, err := exec.Command(fx.Cipack, "rebase", target).CombinedOutput()
		cipackT = append(cipackT, time.Since(start))
		if err != nil || !strings.Contains(string(out), "1 rebase") {
			b.Fatalf("cipack: %v\n%s", err, out)
		}
		for _, tr := range proxy.Blobs() {
			if layerDigests[tr.Digest] {
				layerBlobs++
			}
		}
		start = time.Now()
		for _, arch := range []string{"amd64", "arm64"} {
			if out, err := rebaser(arch).CombinedOutput(); err != nil {
				b.Fatalf("rebaser %s: %v\n%s", arch, err, out)
			}
		}
		rebaserT = append(rebaserT, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(ms(median(cipackT)), "cipack-ms")
	b.ReportMetric(ms(median(rebaserT)), "2x-rebaser-ms")
	b.ReportMetric(float64(median(cipackT))/float64(median(rebaserT)), "cipack/2x-rebaser")
	b.ReportMetric(float64(layerBlobs), "layer-blobs-moved")
	b.ReportMetric(0, "ns/op")
}
