package creator

import (
	"slices"
	"strings"
	"testing"
)

// The split plan hands the registry credentials to the credential phases
// only, and gives every phase the paths and choices the creator would get.
func TestPlanPhasesKeepsCredentialsFromBuildCode(t *testing.T) {
	b := &Builder{CNBDir: "/cnb"}
	in := CreateInputs{PlatformAPI: "0.15", Image: "reg.example/app", Tags: []string{"reg.example/app:v1"},
		AppDir: "/workspace", LayersDir: "/layers", PlatformDir: "/platform", ReportPath: "/layers/report.toml",
		RunToml: "/platform/run.toml", CacheDir: "/cache", UID: 1000, GID: 1001, RegistryAuth: `{"reg.example":"Basic czNjcmV0"}`,
		Insecure: []string{"reg.example"}, ProcessType: "web"}
	phases := PlanPhases(b, in)
	var names []string
	for _, p := range phases {
		names = append(names, p.Phase)
		hasAuth := slices.ContainsFunc(p.Env, func(e string) bool { return strings.HasPrefix(e, "CNB_REGISTRY_AUTH=") })
		if hasAuth != p.Trusted {
			t.Errorf("%s: trusted %v, has credentials %v", p.Phase, p.Trusted, hasAuth)
		}
		if strings.Contains(strings.Join(p.Args, " "), "czNjcmV0") {
			t.Errorf("%s: credentials in argv", p.Phase)
		}
		if !slices.Contains(p.Env, "CNB_PLATFORM_API=0.15") {
			t.Errorf("%s: env %v lacks the platform API", p.Phase, p.Env)
		}
	}
	if want := []string{"analyzing", "detecting", "restoring", "building", "exporting"}; !slices.Equal(names, want) {
		t.Fatalf("phases %v, want %v", names, want)
	}
	for _, c := range []struct {
		phase int
		want  string
	}{
		{0, "-layers /layers -run /platform/run.toml -uid 1000 -gid 1001 -insecure-registry reg.example -tag reg.example/app:v1 reg.example/app"},
		{1, "-app /workspace -layers /layers -platform /platform -buildpacks /cnb/buildpacks -order /cnb/order.toml -run /platform/run.toml"},
		{2, "-layers /layers -run /platform/run.toml -uid 1000 -gid 1001 -cache-dir /cache -insecure-registry reg.example"},
		{3, "-app /workspace -layers /layers -platform /platform -buildpacks /cnb/buildpacks"},
		{4, "-app /workspace -layers /layers -launcher /cnb/lifecycle/launcher -report /layers/report.toml -run /platform/run.toml -uid 1000 -gid 1001 -cache-dir /cache -insecure-registry reg.example -process-type web reg.example/app reg.example/app:v1"},
	} {
		if got := strings.Join(phases[c.phase].Args, " "); got != c.want {
			t.Errorf("%s args\n got %s\nwant %s", phases[c.phase].Phase, got, c.want)
		}
	}
	if phases[1].Path != "/cnb/lifecycle/detector" || phases[4].Path != "/cnb/lifecycle/exporter" {
		t.Errorf("paths %s %s", phases[1].Path, phases[4].Path)
	}
	// analyzed.toml kept apart: every phase is told where.
	in.AnalyzedPath = "/analyzed/analyzed.toml"
	for _, p := range PlanPhases(b, in) {
		if !strings.Contains(strings.Join(p.Args, " "), "-analyzed /analyzed/analyzed.toml") {
			t.Errorf("%s does not use the analyzed.toml kept from build code: %v", p.Phase, p.Args)
		}
	}
	in.AnalyzedPath = ""
	// Before API 0.13 the insecure registries go in the env, of the
	// credential phases only.
	in.PlatformAPI = "0.12"
	for _, p := range PlanPhases(b, in) {
		has := slices.Contains(p.Env, "CNB_INSECURE_REGISTRIES=reg.example")
		if has != p.Trusted || strings.Contains(strings.Join(p.Args, " "), "-insecure-registry") {
			t.Errorf("0.12 %s: env %v args %v", p.Phase, p.Env, p.Args)
		}
	}
}
