package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkBuildCodeNetwork is what build code's own network costs: the
// same warm pull-mode build with --network isolated (a network namespace
// and pasta per build-code container) and --network host, alternated,
// with the detect and build phases' times from --output json. The
// difference per phase is the namespace, pasta's start and its stop.
func BenchmarkBuildCodeNetwork(b *testing.B) {
	needFixture(b)
	if _, err := exec.LookPath("pasta"); err != nil {
		b.Skip("no pasta (apt-get install passt)")
	}
	store := filepath.Join(fx.Dir, "bench-net-builders")
	cache := filepath.Join(fx.Dir, "bench-net-cache")
	phases := func(mode string) map[string]time.Duration {
		r := pullBuildEnv(b, store, nil, "--builder", fx.BuilderImage, "--image", fx.Registry.Host+"/bench-net/app:latest",
			"--cache-dir", cache, "--platform-api", "0.15", "--network", mode, "--output", "json")
		if r.code != 0 {
			b.Fatalf("--network %s: exit %d\n%s", mode, r.code, r.stderr)
		}
		var res struct {
			Phases []struct {
				Phase    string        `json:"phase"`
				Duration time.Duration `json:"duration_ns"`
			} `json:"phases"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			b.Fatalf("--output json: %v\n%s", err, r.stdout)
		}
		out := map[string]time.Duration{}
		for _, p := range res.Phases {
			out[p.Phase] = p.Duration
		}
		return out
	}
	phases("host") // warm-up: unpack the builder, fill the cache
	got := map[string]map[string][]time.Duration{"host": {}, "isolated": {}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range 2 {
			mode := []string{"host", "isolated"}[(i+j)%2] // neither side always first
			for phase, d := range phases(mode) {
				got[mode][phase] = append(got[mode][phase], d)
			}
		}
	}
	b.StopTimer()
	for _, phase := range []string{"detecting", "building"} {
		h, n := median(got["host"][phase]), median(got["isolated"][phase])
		b.ReportMetric(ms(h), phase+"-host-ms")
		b.ReportMetric(ms(n), phase+"-isolated-ms")
		b.ReportMetric(ms(n-h), phase+"-added-ms")
	}
	b.ReportMetric(0, "ns/op")
}
