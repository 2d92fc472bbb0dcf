package cnb

import (
	"slices"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		name      string
		requested string
		builder   []string
		want      string
		code      int
	}{
		{"auto picks highest common", "auto", []string{"0.7", "0.12", "0.13", "0.14"}, "0.14", 0},
		{"empty means auto", "", []string{"0.12", "0.15"}, "0.15", 0},
		{"auto with builder newer than cipack", "auto", []string{"0.15", "0.16"}, "0.15", 0},
		{"explicit supported", "0.13", []string{"0.12", "0.13", "0.14"}, "0.13", 0},
		{"explicit unsupported by builder", "0.15", []string{"0.12", "0.13"}, "", exit.Builder},
		{"explicit unsupported by cipack", "0.9", []string{"0.9"}, "", exit.Usage},
		{"malformed", "zero", []string{"0.12"}, "", exit.Usage},
		{"nothing in common", "auto", []string{"0.7", "0.8"}, "", exit.Builder},
		{"order of builder list does not matter", "auto", []string{"0.14", "0.12", "0.13"}, "0.14", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Negotiate(c.requested, c.builder)
			if exit.Code(err) != c.code {
				t.Fatalf("code %d (%v), want %d", exit.Code(err), err, c.code)
			}
			if got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestExitErrorMapsEveryLifecycleCode(t *testing.T) {
	cases := []struct {
		code  int
		want  int
		hint  string
		phase string
	}{
		{0, exit.OK, "", ""},
		{11, exit.Lifecycle, "platform API", "platform API"},
		{12, exit.Lifecycle, "buildpack", "buildpack API"},
		{20, exit.Detect, "no buildpack group detected", "detect"},
		{21, exit.Detect, "errored", "detect"},
		{22, exit.Detect, "detection failed", "detect"},
		{32, exit.Lifecycle, "previous image", "analyze"},
		{42, exit.Lifecycle, "cache", "restore"},
		{51, exit.Build, "bin/build failed", "build"},
		{52, exit.Build, "build phase failed", "build"},
		{62, exit.Export, "pushed", "export"},
		{72, exit.Lifecycle, "rebas", "rebase"},
		{82, exit.Lifecycle, "launch", "launch"},
		{91, exit.Builder, "extension", "generate"},
		{92, exit.Builder, "generate", "generate"},
		{102, exit.Builder, "extending", "extend"},
		{1, exit.Lifecycle, "read the lifecycle output", "creator"},
		{99, exit.Lifecycle, "read the lifecycle output", "creator"},
	}
	for _, c := range cases {
		err := ExitError("creator", c.code)
		if got := exit.Code(err); got != c.want {
			t.Errorf("lifecycle %d → cipack %d, want %d", c.code, got, c.want)
		}
		if err != nil && (!strings.Contains(err.Error(), c.hint) || !strings.Contains(err.Error(), c.phase)) {
			t.Errorf("lifecycle %d: %q lacks %q / %q", c.code, err, c.hint, c.phase)
		}
	}
}

// cipack's lowest platform API, 0.12, needs lifecycle v0.17 or newer: the
// hint must not send users to an older one.
func TestNoCommonAPIHintNamesALifecycleThatWorks(t *testing.T) {
	_, err := Negotiate(Auto, []string{"0.10", "0.11"})
	if err == nil || !strings.Contains(err.Error(), "v0.17.0 or newer") {
		t.Fatalf("hint: %v", err)
	}
	if !slices.Contains(SupportedAPIs, "0.12") || slices.Contains(SupportedAPIs, "0.11") {
		t.Fatalf("cipack's lowest API changed (%v): update MinLifecycle", SupportedAPIs)
	}
}

// A lifecycle binary that panics (Go exits 2) is named as a crash, not as
// an unknown code.
func TestExitErrorNamesAPanic(t *testing.T) {
	err := ExitError("exporter", 2)
	if exit.Code(err) != exit.Lifecycle || !strings.Contains(err.Error(), "Go runtime panic") || !strings.Contains(err.Error(), "nothing was tagged") {
		t.Fatalf("got %v (exit %d)", err, exit.Code(err))
	}
}
