package rebase

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/registry"
)

// Reader is what the engine reads of a registry: manifests, configs,
// tags and referrers, never a layer. *registry.Client is the one used;
// tests put go-containerregistry's in-process registry or a fake behind
// it. Declared here, where it is used, as ko's publish and pack's client
// declare theirs.
type Reader interface {
	Parse(ref string) (name.Reference, error)
	Head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error)
	Get(ctx context.Context, ref name.Reference) (*remote.Descriptor, error)
	Config(ctx context.Context, ref name.Reference) (v1.Image, *v1.ConfigFile, error)
	ConfigFor(ctx context.Context, ref name.Reference, p v1.Platform) (v1.Image, *v1.ConfigFile, error)
	TagDigests(ctx context.Context, refs []name.Reference) (map[string]string, error)
	Referrers(ctx context.Context, d name.Digest, artifactType string) (*v1.IndexManifest, error)
	// ManifestTimes is what the registry says about time for a manifest.
	ManifestTimes(ctx context.Context, d name.Digest) (registry.ManifestTimes, error)
}

// Writer is what applying a decision writes: images and indexes by
// digest, then tags, all or none.
type Writer interface {
	Write(ctx context.Context, ref name.Reference, img v1.Image) error
	Put(ctx context.Context, ref name.Reference, t remote.Taggable) error
	MoveTags(ctx context.Context, targets []name.Reference, t remote.Taggable, seen map[string]string) ([]string, error)
}

// Registry is both.
type Registry interface {
	Reader
	Writer
}
