package testenv

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// MustHead returns ref's digest as the registry has it, or fails the test.
func MustHead(t testing.TB, ref string) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return d.Digest
}

// MustPull returns ref's image (layers fetched lazily), or fails the test.
func MustPull(t testing.TB, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return img
}

// MustConfig returns ref's config file, or fails the test.
func MustConfig(t testing.TB, ref string) *v1.ConfigFile {
	t.Helper()
	cf, err := MustPull(t, ref).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf
}
