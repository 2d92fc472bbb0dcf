package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/pull"
	"github.com/cipack/cipack/internal/registry"
	"github.com/cipack/cipack/internal/testenv"
)

// BenchmarkPullMode builds the example app in pull mode (the builder
// pulled and sandboxed on the host) cold (empty builder cache) and warm
// (builder already unpacked), against the anchor: the same warm build in
// in-builder mode. Goal: warm pull mode within 1.10× of in-builder.
func BenchmarkPullMode(b *testing.B) {
	needFixture(b)
	ctx := context.Background()
	image := fx.Registry.Host + "/bench-pull/app:latest"
	warmCache := filepath.Join(fx.Dir, "bench-pull-builders")
	buildCache := filepath.Join(fx.Dir, "bench-pull-cache")
	pull := func(cache string) time.Duration {
		r, d := pullBuild(b, cache, "--builder", fx.BuilderImage, "--image", image, "--cache-dir", buildCache, "--platform-api", "0.15")
		if r.code != 0 {
			b.Fatalf("pull mode: %d\n%s", r.code, r.stderr)
		}
		return d
	}
	pull(warmCache) // warm-up: unpack once, fill the build cache
	inBuilder := func() time.Duration {
		cmd := fx.CipackBuild(ctx, workspace(b, "bench-pull-in"), "--image", image, "--cache-dir", buildCache, "--platform-api", "0.15")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("in-builder: %v\n%s", err, out)
		}
		return time.Since(start)
	}
	var cold, warm, inb []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fresh := filepath.Join(fx.Dir, fmt.Sprintf("bench-pull-cold-%d", i))
		cold = append(cold, pull(fresh))
		_ = os.RemoveAll(fresh)
		if i%2 == 0 {
			warm = append(warm, pull(warmCache))
			inb = append(inb, inBuilder())
		} else {
			inb = append(inb, inBuilder())
			warm = append(warm, pull(warmCache))
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(median(cold)), "pull-cold-ms")
	b.ReportMetric(ms(median(warm)), "pull-warm-ms")
	b.ReportMetric(ms(median(inb)), "in-builder-ms")
	b.ReportMetric(float64(median(warm))/float64(median(inb)), "pull-warm/in-builder")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkUnpackBuilder unpacks the test builder into an empty cache
// (pull mode's cold start) and reports the time against the builder's
// size: the figure to scale to a Paketo builder (about 1 GB unpacked).
func BenchmarkUnpackBuilder(b *testing.B) {
	needFixture(b)
	ctx := context.Background()
	reg, err := registry.New(registry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var size int64
	ls, _ := testenv.MustPull(b, fx.BuilderImage).Layers()
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, rc)
		rc.Close()
		size += n
	}
	var times []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cache := filepath.Join(fx.Dir, fmt.Sprintf("bench-unpack-%d", i))
		start := time.Now()
		p, err := pull.Prepare(ctx, reg, fx.BuilderImage, cache)
		times = append(times, time.Since(start))
		if err != nil || p.Unpacked != len(p.Layers) {
			b.Fatalf("unpack: %v", err)
		}
		b.StopTimer()
		_ = os.RemoveAll(cache)
		b.StartTimer()
	}
	b.StopTimer()
	mb := float64(size) / (1 << 20)
	b.ReportMetric(ms(median(times)), "unpack-ms")
	b.ReportMetric(mb, "builder-MB")
	b.ReportMetric(mb/median(times).Seconds(), "MB/s")
	b.ReportMetric(0, "ns/op")
}
