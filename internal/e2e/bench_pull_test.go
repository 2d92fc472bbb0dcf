package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cipack/cipack/internal/pull"
	"github.com/cipack/cipack/internal/registry"
	"github.com/cipack/cipack/internal/testenv"
)

// BenchmarkPullMode builds the example app in pull mode (the builder
// pulled, each phase in a container) cold (empty builder store) and warm
// (builder already unpacked), by default (five phases, the credential
// ones through the trusted lifecycle) and with --trust-builder (one
// creator), against the anchor: the same warm build in in-builder mode.
// Goal: warm pull mode within 1.10x of in-builder.
func BenchmarkPullMode(b *testing.B) {
	needFixture(b)
	image := fx.Registry.Host + "/bench-pull/app:latest"
	warmCache := filepath.Join(fx.Dir, "bench-pull-builders")
	buildCache := filepath.Join(fx.Dir, "bench-pull-cache")
	pull := func(cache string, extra ...string) time.Duration {
		r, d := pullBuild(b, cache, append([]string{"--builder", fx.BuilderImage, "--image", image, "--cache-dir", buildCache, "--platform-api", "0.15"}, extra...)...)
		if r.code != 0 {
			b.Fatalf("pull mode: %d\n%s", r.code, r.stderr)
		}
		return d
	}
	pull(warmCache) // warm-up: unpack once, fill the build cache
	inBuilder := func() time.Duration { return inBuilderBuild(b, image, buildCache) }
	var cold, warm, trusted, inb []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fresh := filepath.Join(fx.Dir, fmt.Sprintf("bench-pull-cold-%d", i))
		cold = append(cold, pull(fresh))
		_ = os.RemoveAll(fresh)
		// Alternate the order so neither side always runs first.
		runs := []func(){
			func() { warm = append(warm, pull(warmCache)) },
			func() { trusted = append(trusted, pull(warmCache, "--trust-builder")) },
			func() { inb = append(inb, inBuilder()) },
		}
		for j := range runs {
			runs[(i+j)%len(runs)]()
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(median(cold)), "pull-cold-ms")
	b.ReportMetric(ms(median(warm)), "pull-warm-ms")
	b.ReportMetric(ms(median(trusted)), "pull-warm-trusted-ms")
	b.ReportMetric(ms(median(inb)), "in-builder-ms")
	b.ReportMetric(float64(median(warm))/float64(median(inb)), "pull-warm/in-builder")
	b.ReportMetric(float64(median(trusted))/float64(median(inb)), "trusted-warm/in-builder")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkPullModeWideBuilder is the same comparison with a builder of
// real size: 120 layers, about 1 GB (the test builder plus filler layers
// of random bytes). Cold is unpack plus the first build into an empty
// store; warm reuses the store; in-builder runs the same builder's /cnb.
func BenchmarkPullModeWideBuilder(b *testing.B) {
	needFixture(b)
	ctx := context.Background()
	builder := fx.Registry.Host + "/bench-pull/wide-builder:v1"
	img, err := withRandomLayers(testenv.MustPull(b, fx.BuilderImage), 120, 1<<30)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := testenv.Push(ctx, builder, img); err != nil {
		b.Fatal(err)
	}
	image := fx.Registry.Host + "/bench-pull/wide-app:latest"
	buildCache := filepath.Join(fx.Dir, "bench-wide-cache")
	warmStore := filepath.Join(fx.Dir, "bench-wide-builders")
	pull := func(store string) time.Duration {
		r, d := pullBuild(b, store, "--builder", builder, "--image", image, "--cache-dir", buildCache, "--platform-api", "0.15")
		if r.code != 0 {
			b.Fatalf("pull mode: %d\n%s", r.code, r.stderr)
		}
		return d
	}
	pull(warmStore)
	inBuilder := func() time.Duration { return inBuilderBuild(b, image, buildCache) }
	var cold, warm, inb []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fresh := filepath.Join(fx.Dir, fmt.Sprintf("bench-wide-cold-%d", i))
		cold = append(cold, pull(fresh))
		b.StopTimer()
		_ = os.RemoveAll(fresh)
		b.StartTimer()
		if i%2 == 0 {
			warm = append(warm, pull(warmStore))
			inb = append(inb, inBuilder())
		} else {
			inb = append(inb, inBuilder())
			warm = append(warm, pull(warmStore))
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(median(cold)), "cold-unpack+build-ms")
	b.ReportMetric(ms(median(warm)), "warm-ms")
	b.ReportMetric(ms(median(inb)), "in-builder-ms")
	b.ReportMetric(float64(median(warm))/float64(median(inb)), "warm/in-builder")
	b.ReportMetric(float64(median(cold))/float64(median(inb)), "cold/in-builder")
	b.ReportMetric(0, "ns/op")
}

// inBuilderBuild times one in-builder build of the example app: the
// anchor of the pull-mode benchmarks.
func inBuilderBuild(b *testing.B, image, cache string) time.Duration {
	cmd := fx.CipackBuild(context.Background(), workspace(b, "bench-pull-in"), "--image", image, "--cache-dir", cache, "--platform-api", "0.15")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("in-builder: %v\n%s", err, out)
	}
	return time.Since(start)
}

// withRandomLayers appends layers of random bytes (incompressible, like
// the binaries of a real builder) until img has total layers and about
// size bytes more.
func withRandomLayers(img v1.Image, total int, size int64) (v1.Image, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	n := total - len(layers)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i++ {
		body := make([]byte, size/int64(n))
		for j := 0; j+8 <= len(body); j += 8 {
			binary.LittleEndian.PutUint64(body[j:], rng.Uint64())
		}
		l, err := testenv.LayerFromFiles([]testenv.TarFile{
			{Name: "opt/", Dir: true, Mode: 0o755}, {Name: "opt/filler/", Dir: true, Mode: 0o755},
			{Name: fmt.Sprintf("opt/filler/blob-%03d", i), Mode: 0o644, Body: body},
		})
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	return img, nil
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
