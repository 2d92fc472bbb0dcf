package creator

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
)

func TestCandidates(t *testing.T) {
	cases := []struct {
		name      string
		requested string
		declared  []string
		want      []string
		code      int
	}{
		{"auto without lifecycle.toml: every API, newest first", cnb.Auto, nil, []string{"0.15", "0.14", "0.13", "0.12"}, 0},
		{"explicit without lifecycle.toml: only that one", "0.13", nil, []string{"0.13"}, 0},
		{"explicit unknown to cipack", "0.9", nil, nil, exit.Usage},
		{"declared APIs decide up front", cnb.Auto, []string{"0.12", "0.13"}, []string{"0.13"}, 0},
		{"declared APIs too old", cnb.Auto, []string{"0.10", "0.11"}, nil, exit.Builder},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Candidates(c.requested, &Builder{DeclaredAPIs: c.declared})
			if exit.Code(err) != c.code || !slices.Equal(got, c.want) {
				t.Fatalf("got %v, code %d (%v); want %v, code %d", got, exit.Code(err), err, c.want, c.code)
			}
		})
	}
}

// fakeCreator behaves like the lifecycle's creator towards the platform
// API: it exits 11 before any phase unless CNB_PLATFORM_API is in accepts.
func fakeCreator(t *testing.T, accepts string, exitCode int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "creator")
	script := fmt.Sprintf(`#!/bin/sh
case " %s " in *" $CNB_PLATFORM_API "*) ;; *) echo "ERROR: platform API $CNB_PLATFORM_API unsupported"; exit 11;; esac
echo "===> DETECTING"
echo "detected with $CNB_PLATFORM_API"
echo "===> BUILDING"
exit %d
`, accepts, exitCode)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunNegotiated(t *testing.T) {
	cases := []struct {
		name       string
		accepts    string
		exitCode   int
		candidates []string
		wantAPI    string
		code       int
	}{
		{"newest accepted at once", "0.12 0.13 0.14 0.15", 0, []string{"0.15", "0.14"}, "0.15", 0},
		{"falls back to an older API", "0.12 0.13", 0, []string{"0.15", "0.14", "0.13", "0.12"}, "0.13", 0},
		{"none accepted", "0.7", 0, []string{"0.15", "0.14"}, "", exit.Builder},
		{"a build failure is not an API rejection", "0.15", 51, []string{"0.15", "0.14"}, "0.15", exit.Build},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			creator := fakeCreator(t, c.accepts, c.exitCode)
			var log strings.Builder
			var tried []string
			r := &Runner{Log: &log}
			api, timings, err := r.RunNegotiated(context.Background(), c.candidates, func(api string) Invocation {
				tried = append(tried, api)
				return Invocation{Path: creator, Env: []string{"CNB_PLATFORM_API=" + api}}
			})
			if exit.Code(err) != c.code || api != c.wantAPI {
				t.Fatalf("api %q code %d (%v), want %q code %d; tried %v", api, exit.Code(err), err, c.wantAPI, c.code, tried)
			}
			if strings.Contains(log.String(), "unsupported") {
				t.Fatalf("rejected attempts must leave nothing in the log:\n%s", log.String())
			}
			if c.code == 0 && (len(timings) != 2 || !strings.Contains(log.String(), "detected with "+c.wantAPI)) {
				t.Fatalf("timings %v, log:\n%s", timings, log.String())
			}
		})
	}
}

func TestPlanCreate(t *testing.T) {
	base := CreateInputs{
		PlatformAPI: "0.14", Image: "r.example/app", AppDir: "/workspace", LayersDir: "/layers",
		PlatformDir: "/tmp/p", ReportPath: "/layers/report.toml", UID: 1001, GID: 1002,
	}
	withRun := &Builder{CNBDir: "/cnb", HasRunToml: true}
	stackOnly := &Builder{CNBDir: "/cnb", HasStackToml: true}
	cases := []struct {
		name     string
		b        *Builder
		mutate   func(*CreateInputs)
		want     []string // consecutive argv pairs or singles that must appear
		notWant  []string
		wantEnv  []string
		lastArgv string
	}{
		{"defaults use run.toml and the ids", withRun, func(*CreateInputs) {},
			[]string{"-run /cnb/run.toml", "-uid 1001", "-gid 1002", "-launcher /cnb/lifecycle/launcher", "-order /cnb/order.toml"},
			[]string{"-process-type", "-run-image", "-stack"}, []string{"CNB_PLATFORM_API=0.14"}, "r.example/app"},
		{"a platform run.toml wins over the builder's", withRun, func(in *CreateInputs) { in.RunToml = "/tmp/p/run.toml" },
			[]string{"-run /tmp/p/run.toml"}, []string{"-run /cnb/run.toml", "-run-image"}, nil, "r.example/app"},
		{"stack.toml when there is no run.toml", stackOnly, func(*CreateInputs) {},
			[]string{"-stack /cnb/stack.toml"}, []string{"-run "}, nil, "r.example/app"},
		{"tags, cache, previous, process type", withRun, func(in *CreateInputs) {
			in.Tags = []string{"r.example/app:v1", "r.example/app:v2"}
			in.CacheImage, in.PreviousImage, in.ProcessType = "r.example/cache", "r.example/old", "web"
		}, []string{"-tag r.example/app:v1", "-tag r.example/app:v2", "-cache-image r.example/cache", "-previous-image r.example/old", "-process-type web"},
			nil, nil, "r.example/app"},
		{"insecure registries as flags from 0.13", withRun, func(in *CreateInputs) { in.Insecure = []string{"reg.local:5000"} },
			[]string{"-insecure-registry reg.local:5000"}, nil, nil, "r.example/app"},
		{"insecure registries as env before 0.13", withRun, func(in *CreateInputs) { in.PlatformAPI = "0.12"; in.Insecure = []string{"a:1", "b:2"} },
			nil, []string{"-insecure-registry"}, []string{"CNB_INSECURE_REGISTRIES=a:1,b:2", "CNB_PLATFORM_API=0.12"}, "r.example/app"},
		{"registry auth only in env", withRun, func(in *CreateInputs) { in.RegistryAuth = `{"r.example":"Basic eA=="}` },
			nil, []string{"Basic"}, []string{`CNB_REGISTRY_AUTH={"r.example":"Basic eA=="}`}, "r.example/app"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base
			c.mutate(&in)
			inv := PlanCreate(c.b, in)
			if inv.Path != "/cnb/lifecycle/creator" {
				t.Fatalf("path %s", inv.Path)
			}
			argv := " " + strings.Join(inv.Args, " ") + " "
			for _, w := range c.want {
				if !strings.Contains(argv, " "+w+" ") {
					t.Errorf("argv lacks %q: %s", w, argv)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(argv, w) {
					t.Errorf("argv has %q: %s", w, argv)
				}
			}
			for _, e := range c.wantEnv {
				if !slices.Contains(inv.Env, e) {
					t.Errorf("env lacks %q: %v", e, inv.Env)
				}
			}
			if inv.Args[len(inv.Args)-1] != c.lastArgv {
				t.Errorf("the image must be the last argument: %v", inv.Args)
			}
		})
	}
}

type recorder struct{ events []string }

func (r *recorder) PhaseStart(p string)                { r.events = append(r.events, "start "+p) }
func (r *recorder) PhaseEnd(p string, _ time.Duration) { r.events = append(r.events, "end "+p) }

func TestPhaseWriterTimesPhasesAcrossSplitWrites(t *testing.T) {
	var out strings.Builder
	rec := &recorder{}
	clock := time.Unix(0, 0)
	w := &phaseWriter{out: &out, obs: rec, now: func() time.Time { clock = clock.Add(time.Second); return clock }}
	for _, chunk := range []string{"\x1b[36m===> DETEC", "TING\x1b[0m\nbp 1\n===> BUILDING\nhal", "f line"} {
		_, _ = w.Write([]byte(chunk))
	}
	timings := w.finish()
	if got := strings.Join(rec.events, ","); got != "start detecting,end detecting,start building,end building" {
		t.Fatalf("events %s", got)
	}
	if len(timings) != 2 || timings[0].Phase != "detecting" || timings[0].Duration != time.Second {
		t.Fatalf("timings %+v", timings)
	}
	if !strings.HasSuffix(out.String(), "half line\n") || !strings.Contains(out.String(), "bp 1\n") {
		t.Fatalf("lines must pass through whole: %q", out.String())
	}
}

// A builder's descriptor that is a FIFO or a link to /dev/zero neither
// hangs nor exhausts cipack in-builder: it is refused as the builder's
// fault.
func TestLoadBuilderRefusesSpecialDescriptors(t *testing.T) {
	for name, plant := range map[string]func(p string) error{
		"fifo":     func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"dev-zero": func(p string) error { return os.Symlink("/dev/zero", p) },
	} {
		cnb := t.TempDir()
		if err := os.MkdirAll(filepath.Join(cnb, "lifecycle"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cnb, "lifecycle", "creator"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := plant(filepath.Join(cnb, "lifecycle", "lifecycle.toml")); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := LoadBuilder(cnb); done <- err }()
		select {
		case err := <-done:
			if exit.Code(err) != exit.Builder {
				t.Errorf("%s: %v, want a builder error", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: LoadBuilder hangs", name)
		}
	}
}

// Before is asked before each phase; its error stops the run there: the
// phases after it (export, which pushes) do not start.
func TestRunPhasesStopsWhereBeforeRefuses(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	phase := filepath.Join(dir, "phase")
	if err := os.WriteFile(phase, []byte("#!/bin/sh\necho \"$0 $1\" >> "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var asked []string
	r := &Runner{Log: io.Discard, Before: func(inv Invocation) error {
		asked = append(asked, inv.Phase)
		if inv.Phase == "export" {
			return exit.New(exit.Build, "--sbom-dir", fmt.Errorf("too large"), "nothing was pushed")
		}
		return nil
	}}
	_, err := r.RunPhases(context.Background(), []Invocation{{Path: phase, Args: []string{"build"}, Phase: "build"}, {Path: phase, Args: []string{"export"}, Phase: "export"}})
	if exit.Code(err) != exit.Build || strings.Join(asked, ",") != "build,export" {
		t.Fatalf("err %v (exit %d), asked %v", err, exit.Code(err), asked)
	}
	if b, _ := os.ReadFile(marker); strings.Contains(string(b), "export") || !strings.Contains(string(b), "build") {
		t.Fatalf("phases run: %q, want build only", b)
	}
}
