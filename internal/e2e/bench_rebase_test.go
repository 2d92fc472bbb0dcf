package e2e

import (
	"context"
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
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/testenv"
)

// BenchmarkRebaseOne rebases one app image onto a moved run image three
// ways, alternating, from the same starting state each time: `cipack
// rebase`, the lifecycle's `rebaser` binary (the anchor), and `crane
// rebase` (fast, but leaves the CNB metadata stale). It also reports the
// layer bytes that crossed the registry during cipack's rebase. Three
// rounds per iteration.
func BenchmarkRebaseOne(b *testing.B) {
	needFixture(b)
	ctx := context.Background()
	crane, err := testenv.CraneBinary(ctx)
	if err != nil {
		b.Fatal(err)
	}
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer proxy.Close()
	h := proxy.Host
	run, oldRun := h+"/bench-rebase/run:latest", h+"/bench-rebase/run:v1"
	pushRun(b, oldRun, "v1", testenv.StackID)
	pushRun(b, run, "v1", testenv.StackID)
	app := h + "/bench-rebase/app:latest"
	if r := cipackBuild(b, "bench-rebase", nil, "--image", app, "--run-image", run); r.code != 0 {
		b.Fatalf("build: %s", r.stderr)
	}
	pushRun(b, run, "v2", testenv.StackID)
	original := testenv.MustPull(b, app)
	layers, _ := original.Layers()
	layerDigests := map[string]bool{}
	for _, l := range layers {
		d, _ := l.Digest()
		layerDigests[d.String()] = true
	}
	targets := map[string]string{"cipack": h + "/bench-rebase/by-cipack:latest", "rebaser": h + "/bench-rebase/by-rebaser:latest", "crane": h + "/bench-rebase/by-crane:latest"}
	reset := func(ref string) {
		r, _ := name.ParseReference(ref)
		if err := remote.Write(r, original); err != nil {
			b.Fatal(err)
		}
	}
	reportDir := filepath.Join(fx.Dir, "bench-rebaser-report")
	_ = os.MkdirAll(reportDir, 0o777)
	_ = os.Chmod(reportDir, 0o777)
	commands := map[string]func() *exec.Cmd{
		"cipack": func() *exec.Cmd { return exec.Command(fx.Cipack, "rebase", targets["cipack"]) },
		"rebaser": func() *exec.Cmd {
			c := exec.Command(filepath.Join(fx.BuilderDir, "lifecycle", "rebaser"), "-run-image", run, "-report", filepath.Join(reportDir, "report.toml"),
				"-uid", strconv.Itoa(fx.UID), "-gid", strconv.Itoa(fx.GID), targets["rebaser"])
			c.Env = append(os.Environ(), "CNB_PLATFORM_API=0.15")
			return c
		},
		"crane": func() *exec.Cmd {
			return exec.Command(crane, "rebase", targets["crane"], "--old_base", oldRun, "--new_base", run, "--tag", targets["crane"])
		},
	}
	order := []string{"cipack", "rebaser", "crane"}
	times := map[string][]time.Duration{}
	var layerBytesSeen int
	b.ResetTimer()
	// Three rounds of the three per iteration: a median of 7 samples
	// moved by ±10% between runs on this 2-core machine.
	for i := 0; i < 3*b.N; i++ {
		for j := range order {
			tool := order[(i+j)%len(order)]
			b.StopTimer()
			reset(targets[tool])
			proxy.Reset()
			cmd := commands[tool]()
			b.StartTimer()
			start := time.Now()
			out, err := cmd.CombinedOutput()
			d := time.Since(start)
			if err != nil {
				b.Fatalf("%s: %v\n%s", tool, err, out)
			}
			times[tool] = append(times[tool], d)
			if tool == "cipack" {
				if !strings.Contains(string(out), "1 images: 0 up-to-date, 1 rebase") {
					b.Fatalf("cipack did not rebase:\n%s", out)
				}
				for _, t := range proxy.Blobs() {
					if layerDigests[t.Digest] {
						layerBytesSeen++
					}
				}
			}
		}
	}
	b.StopTimer()
	mc, mr, mk := median(times["cipack"]), median(times["rebaser"]), median(times["crane"])
	b.ReportMetric(ms(mc), "cipack-ms")
	b.ReportMetric(ms(mr), "rebaser-ms")
	b.ReportMetric(ms(mk), "crane-ms")
	b.ReportMetric(float64(mc)/float64(mr), "cipack/rebaser")
	b.ReportMetric(float64(mc)/float64(mk), "cipack/crane")
	b.ReportMetric(1.0, "goal-cipack/crane")
	b.ReportMetric(float64(layerBytesSeen), "layer-blobs-moved")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkNoDriftSweep checks 200 app images sharing 3 run images, where
// nothing moved, through a counting proxy: `cipack rebase` against a naive
// one-image-at-a-time loop (manifest and config of each image and of its
// run image, as a script over crane-like calls would do).
func BenchmarkNoDriftSweep(b *testing.B) {
	needFixture(b)
	proxy, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer proxy.Close()
	h := proxy.Host
	const images, runImages = 200, 3
	var fleet strings.Builder
	fleet.WriteString("images:\n")
	var refs []string
	for r := 0; r < runImages; r++ {
		run := fmt.Sprintf("%s/bench-sweep/run%d:latest", h, r)
		pushRun(b, run, fmt.Sprintf("v1-%d", r), testenv.StackID)
		app := fmt.Sprintf("%s/bench-sweep/built%d:latest", h, r)
		if res := cipackBuild(b, "bench-sweep", nil, "--image", app, "--run-image", run); res.code != 0 {
			b.Fatalf("build: %s", res.stderr)
		}
		img := testenv.MustPull(b, app)
		// Copies in their own repositories (blobs are mounted, not sent).
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := r; i < images; i += runImages {
			ref := fmt.Sprintf("%s/bench-sweep/app%03d:latest", h, i)
			refs = append(refs, ref)
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				nr, _ := name.ParseReference(ref)
				if err := remote.Write(nr, img); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	for _, r := range refs {
		fleet.WriteString("  - image: " + r + "\n")
	}
	fleetPath := filepath.Join(fx.Dir, "bench-fleet.yaml")
	if err := os.WriteFile(fleetPath, []byte(fleet.String()), 0o644); err != nil {
		b.Fatal(err)
	}

	var cipackT, naiveT []time.Duration
	var cipackReq, naiveReq int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		proxy.Reset()
		start := time.Now()
		out, err := exec.Command(fx.Cipack, "rebase", "--config", fleetPath).CombinedOutput()
		cipackT = append(cipackT, time.Since(start))
		if err != nil || !strings.Contains(string(out), "200 images: 200 up-to-date") {
			b.Fatalf("sweep: %v\n%s", err, out[max(0, len(out)-500):])
		}
		cipackReq = proxy.Requests.Load()

		proxy.Reset()
		start = time.Now()
		naiveSweep(b, refs)
		naiveT = append(naiveT, time.Since(start))
		naiveReq = proxy.Requests.Load()
	}
	b.StopTimer()
	b.ReportMetric(ms(median(cipackT)), "cipack-ms")
	b.ReportMetric(ms(median(naiveT)), "naive-ms")
	b.ReportMetric(float64(median(cipackT))/float64(median(naiveT)), "cipack/naive")
	b.ReportMetric(float64(cipackReq), "cipack-requests")
	b.ReportMetric(float64(naiveReq), "naive-requests")
	// 2 per image (manifest, config) and 2 per run image (manifest,
	// config: its layers are checked against what each image records).
	b.ReportMetric(float64(2*images+2*runImages), "budget-requests")
	b.ReportMetric(0, "ns/op")
}

// naiveSweep is the anchor: one image at a time, no sharing.
func naiveSweep(b *testing.B, refs []string) {
	for _, ref := range refs {
		app := testenv.MustPull(b, ref)
		cf, err := app.ConfigFile()
		if err != nil {
			b.Fatal(err)
		}
		run := runImageOf(b, cf.Config.Labels["io.buildpacks.lifecycle.metadata"])
		runImg := testenv.MustPull(b, run)
		if _, err := runImg.ConfigFile(); err != nil {
			b.Fatal(err)
		}
	}
}

func runImageOf(b *testing.B, label string) string {
	const key = `"image":"`
	i := strings.LastIndex(label, key)
	if i < 0 {
		b.Fatalf("no run image in %s", label)
	}
	rest := label[i+len(key):]
	return rest[:strings.IndexByte(rest, '"')]
}
