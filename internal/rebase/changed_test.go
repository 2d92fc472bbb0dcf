package rebase

import (
	"strings"
	"testing"
)

func TestSameImage(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"r.example/base/run:jammy", "r.example/base/run:jammy", true},
		{"r.example/base/run", "r.example/base/run:latest", true},
		{"r.example/base/run:jammy", "r.example/base/run:noble", false},
		{"r.example/base/run@sha256:" + strings.Repeat("a", 64), "r.example/base/run:jammy", true},
		{"r.example/base/run:jammy", "mirror.example/base/run:jammy", false},
		{"index.docker.io/library/busybox", "busybox", true},
	} {
		if got := SameImage(tc.a, tc.b); got != tc.same {
			t.Errorf("SameImage(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestAffectedReadsNothingItCanDecide(t *testing.T) {
	targets := []Target{
		{Image: "r.example/a:1"},                                  // last report: on jammy
		{Image: "r.example/b:1"},                                  // last report: on noble
		{Image: "r.example/c:1", RunImage: "r.example/run:jammy"}, // declared
		{Image: "r.example/d:1", RunImage: "r.example/run:noble"}, // declared, another
		{Image: "r.example/e:1", RunImage: "mirror.example/run:x", // a mirror of the changed one
			RunImageMirrors: []string{"r.example/run:jammy"}},
		{Image: "r.example/f:1"}, // unknown: kept, read
	}
	last := RunImages{"r.example/a:1": "r.example/run:jammy", "r.example/b:1": "r.example/run:noble"}
	kept, unknown := Affected(targets, []string{"r.example/run:jammy"}, last)
	var got []string
	for _, k := range kept {
		got = append(got, k.Image)
	}
	if strings.Join(got, " ") != "r.example/a:1 r.example/c:1 r.example/e:1 r.example/f:1" || unknown != 1 {
		t.Fatalf("kept %v, %d unknown", got, unknown)
	}
	if kept, unknown := Affected(targets, []string{"r.example/other:1"}, last); len(kept) != 1 || unknown != 1 {
		t.Fatalf("an unrelated run image kept %v", kept)
	}
}
