package cnb

import (
	"reflect"
	"strings"
	"testing"
)

// Each decoder: absent is nil with no error, malformed names the label
// (never the value), well-formed gives the lifecycle's or pack's shape.
func TestLabelDecoders(t *testing.T) {
	secretish := `{"not json`
	for _, c := range []struct {
		name   string
		decode func(map[string]string) (any, error)
		label  string
		good   string
		check  func(any) bool
	}{
		{"lifecycle metadata", func(l map[string]string) (any, error) { return LifecycleMetadata(l) }, LifecycleMetadataLabel,
			`{"runImage":{"topLayer":"sha256:t","reference":"r@sha256:d","image":"run"}}`,
			func(v any) bool {
				return strings.HasSuffix(reflect.ValueOf(v).Elem().FieldByName("RunImage").FieldByName("TopLayer").String(), "t")
			}},
		{"build metadata", func(l map[string]string) (any, error) { return BuildMetadata(l) }, BuildMetadataLabel,
			`{"buildpacks":[{"id":"a/b","version":"1.0.0"}]}`,
			func(v any) bool { return reflect.ValueOf(v).Elem().FieldByName("Buildpacks").Len() == 1 }},
		{"project metadata", func(l map[string]string) (any, error) { return ProjectMetadata(l) }, ProjectMetadataLabel,
			`{"source":{"type":"git","version":{"commit":"c0ffee"},"metadata":{"repository":"https://git.example/r"}}}`,
			func(any) bool {
				return Source(map[string]string{ProjectMetadataLabel: `{"source":{"type":"git","version":{"commit":"c0ffee"},"metadata":{"repository":"https://git.example/r"}}}`}) == "https://git.example/r@c0ffee"
			}},
		{"builder metadata", func(l map[string]string) (any, error) { return Builder(l) }, BuilderMetadataLabel,
			`{"lifecycle":{"apis":{"platform":{"supported":["0.13","0.14"]},"buildpack":{"supported":["0.10"]}}},"buildpacks":[{"id":"a/b","version":"1"}]}`,
			func(v any) bool {
				md := v.(*BuilderMetadata)
				return len(md.Lifecycle.APIs.Platform.Supported) == 2 && md.Lifecycle.APIs.Buildpack.Supported[0] == "0.10" && md.Buildpacks[0].ID == "a/b"
			}},
		{"buildpackage metadata", func(l map[string]string) (any, error) { return Buildpackage(l) }, BuildpackageMetadataLabel,
			`{"id":"me/bp","version":"3.0.0"}`,
			func(v any) bool { return v.(*BuildpackageMetadata).ID == "me/bp" }},
		{"buildpack layers", func(l map[string]string) (any, error) { return BuildpackLayers(l) }, BuildpackLayersLabel,
			`{"a/b":{"2.0.0":{},"1.0.0":{}},"c":{"1":{}}}`,
			func(v any) bool {
				return reflect.DeepEqual(v.(map[string][]string), map[string][]string{"a/b": {"1.0.0", "2.0.0"}, "c": {"1"}})
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := c.decode(map[string]string{})
			if err != nil || !reflect.ValueOf(v).IsNil() {
				t.Fatalf("absent: %v %v, want nil", v, err)
			}
			_, err = c.decode(map[string]string{c.label: secretish})
			if err == nil || !strings.Contains(err.Error(), c.label) || strings.Contains(err.Error(), secretish) {
				t.Fatalf("malformed: %v, want an error naming %s without the value", err, c.label)
			}
			v, err = c.decode(map[string]string{c.label: c.good})
			if err != nil || !c.check(v) {
				t.Fatalf("good: %+v %v", v, err)
			}
		})
	}
}

// The exit table is keyed on the lifecycle's own constants: its codes are
// the ones the lifecycle v0.21.0 documents.
func TestExitTableKeysAreTheLifecyclesCodes(t *testing.T) {
	want := []int{11, 12, 20, 21, 22, 32, 42, 51, 52, 62, 72, 82, 91, 92, 102}
	if len(lifecycleCodes) != len(want) {
		t.Fatalf("%d codes, want %d", len(lifecycleCodes), len(want))
	}
	for _, c := range want {
		if _, ok := lifecycleCodes[c]; !ok {
			t.Errorf("no entry for lifecycle exit code %d", c)
		}
	}
}
