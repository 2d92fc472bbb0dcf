package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/testenv"
)

// BenchmarkWarmBuild runs the same warm-cache build of the example app
// through `cipack build` and through the equivalent direct `creator`
// invocation (the anchor: the bare lifecycle), alternating, in the same
// builder sandbox, and reports both medians and their ratio.
func BenchmarkWarmBuild(b *testing.B) {
	needFixture(b)
	ctx := context.Background()
	image := fx.Registry.Host + "/bench/app:latest"
	cache := filepath.Join(fx.Dir, "cache-bench")
	if r := cipackBuild(b, "bench-warmup", nil, "--image", image, "--cache-dir", cache); r.code != 0 {
		b.Fatalf("warm-up build: %d\n%s", r.code, r.stderr)
	}
	platform := filepath.Join(fx.Dir, "platform-bench")
	if err := os.MkdirAll(filepath.Join(platform, "env"), 0o755); err != nil {
		b.Fatal(err)
	}
	creatorArgv := []string{"/cnb/lifecycle/creator",
		"-app", "/workspace", "-layers", "/layers", "-platform", platform,
		"-buildpacks", "/cnb/buildpacks", "-order", "/cnb/order.toml", "-launcher", "/cnb/lifecycle/launcher",
		"-run", "/cnb/run.toml", "-report", "/layers/report.toml",
		"-uid", strconv.Itoa(fx.UID), "-gid", strconv.Itoa(fx.GID), "-cache-dir", cache, image}

	sideBySide(b, func() (*exec.Cmd, *exec.Cmd) {
		c1 := fx.CipackBuild(ctx, workspace(b, "bench-cipack"), "--image", image, "--cache-dir", cache, "--platform-api", "0.15")
		c2 := testenv.InBuilder(ctx, workspace(b, "bench-creator"), creatorArgv...)
		c2.Env = append(os.Environ(), "CNB_PLATFORM_API=0.15")
		return c1, c2
	})
}

// sideBySide times b.N pairs of whole processes, cipack's and the bare
// creator's (made fresh for each round by next), alternating which goes
// first, and reports both medians and their ratio.
func sideBySide(b *testing.B, next func() (cipack, creator *exec.Cmd)) {
	timeOne := func(cmd *exec.Cmd) time.Duration {
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
		return time.Since(start)
	}
	var viaCipack, viaCreator []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c1, c2 := next()
		b.StartTimer()
		if i%2 == 0 {
			viaCipack = append(viaCipack, timeOne(c1))
			viaCreator = append(viaCreator, timeOne(c2))
		} else {
			viaCreator = append(viaCreator, timeOne(c2))
			viaCipack = append(viaCipack, timeOne(c1))
		}
	}
	mc, ml := median(viaCipack), median(viaCreator)
	b.ReportMetric(ms(mc), "cipack-ms")
	b.ReportMetric(ms(ml), "creator-ms")
	b.ReportMetric(float64(mc)/float64(ml), "cipack/creator")
	b.ReportMetric(ms(mc-ml), "over-creator-ms")
	b.ReportMetric(10, "goal-over-creator-ms")
	b.ReportMetric(0, "ns/op")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkStartup is the fixed cost of starting cipack: whole
// `cipack --version` processes against `crane version` (both built as
// their releases are: -trimpath, -s -w), alternating, 20 of each per
// round → the medians and cipack's excess over crane (goal ≤ 2 ms). Most
// of it is package init (GODEBUG=inittrace=1): the lifecycle's packages
// cipack reuses link docker's and buildkit's, whose init compiles regexps
// (distribution/reference) and hashes the binary (protobuf's detrand).
func BenchmarkStartup(b *testing.B) {
	needFixture(b)
	crane, err := testenv.CraneBinary(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	run := func(argv ...string) time.Duration {
		start := time.Now()
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", argv, err, out)
		}
		return time.Since(start)
	}
	var viaCipack, viaCrane []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 20; j++ {
			viaCipack = append(viaCipack, run(fx.Cipack, "--version"))
			viaCrane = append(viaCrane, run(crane, "version"))
		}
	}
	mc, mk := median(viaCipack), median(viaCrane)
	b.ReportMetric(ms(mc), "cipack-ms")
	b.ReportMetric(ms(mk), "crane-ms")
	b.ReportMetric(ms(mc-mk), "over-crane-ms")
	b.ReportMetric(2, "goal-over-crane-ms")
	b.ReportMetric(0, "ns/op")
}
