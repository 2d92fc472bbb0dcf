package e2e

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// Patch on push: after a sweep recorded each image's run image, a push of
// one run image checks only the images on it. Apps on another run image
// that moved too are not read, let alone rebased; an image the last
// report does not know is read once and reported NOT_AFFECTED.
func TestRunImageChangedReadsOnlyTheAffectedImages(t *testing.T) {
	needFixture(t)
	w := newRebaseWorld(t, "changed")
	other := fx.Registry.Host + "/changed/run-other:latest"
	pushRun(t, other, "v1", testenv.StackID)
	var onOther []string
	for _, n := range []string{"c", "d"} {
		app := fx.Registry.Host + "/changed/" + n + ":latest"
		if r := cipackBuild(t, "changed", nil, "--image", app, "--run-image", other, "--process-type", "web"); r.code != 0 {
			t.Fatalf("build %s: %d\n%s", app, r.code, r.stderr)
		}
		onOther = append(onOther, app)
	}
	fleet := "images:\n"
	for _, img := range append([]string{w.appA, w.appB}, onOther...) {
		fleet += "  - image: " + img + "\n"
	}
	last := filepath.Join(t.TempDir(), "last.json")
	if _, code, stderr := cipackRebase(t, fleet, nil, "--report-file", last); code != 0 {
		t.Fatalf("the recording sweep: exit %d\n%s", code, stderr)
	}
	// A late image the last report does not know, on the other run image.
	late := fx.Registry.Host + "/changed/late:latest"
	if r := cipackBuild(t, "changed", nil, "--image", late, "--run-image", other); r.code != 0 {
		t.Fatalf("build %s: %d\n%s", late, r.code, r.stderr)
	}
	fleet += "  - image: " + late + "\n"
	before := map[string]string{}
	for _, img := range append(onOther, late) {
		before[img] = testenv.MustHead(t, img).String()
	}
	pushRun(t, w.run, "v2", testenv.StackID)
	pushRun(t, other, "v2", testenv.StackID)

	r, code, stderr := cipackRebase(t, fleet, nil, "--run-image-changed", w.run, "--last-report", last)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var swept []string
	for _, o := range r.Images {
		swept = append(swept, o.Image)
	}
	if want := []string{w.appA, w.appB, late}; !slices.Equal(swept, want) {
		t.Fatalf("the sweep read %v, want %v (the apps on the pushed run image, and the unknown one)", swept, want)
	}
	if v, reason, _, _, _ := r.byImage(t, late); v != "skipped" || reason != "NOT_AFFECTED" {
		t.Errorf("the unknown image: %s %s, want skipped NOT_AFFECTED", v, reason)
	}
	for _, img := range []string{w.appA, w.appB} {
		if v, _, _, _, _ := r.byImage(t, img); v != "rebase" {
			t.Errorf("%s: %s, want rebase", img, v)
		}
	}
	for img, d := range before {
		if testenv.MustHead(t, img).String() != d {
			t.Errorf("%s moved: it is not on the pushed run image", img)
		}
	}
}
