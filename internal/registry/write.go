package registry

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Writes are not retried here: go-containerregistry v0.22.1 retries each
// request on 408/429/5xx and network errors, and a whole blob upload or
// manifest write that fails half-way (remote.Write's retry.Retry).

// Write pushes img to ref (by digest or tag).
func (c *Client) Write(ctx context.Context, ref name.Reference, img v1.Image) error {
	return remote.Write(ref, img, c.RemoteOptions(ctx)...)
}

// Tag points tag at img's manifest.
func (c *Client) Tag(ctx context.Context, tag name.Tag, img remote.Taggable) error {
	return remote.Tag(tag, img, c.RemoteOptions(ctx)...)
}

// Get fetches ref's descriptor, manifest included, whatever it names: an
// image manifest, an OCI index or a Docker manifest list. It never
// resolves an index to a platform: callers look at the media type.
func (c *Client) Get(ctx context.Context, ref name.Reference) (*remote.Descriptor, error) {
	d, err := remote.Get(ref, c.RemoteOptions(ctx)...)
	if err != nil {
		return nil, Classify(ref.String(), "read", err)
	}
	return d, nil
}

// Put writes a manifest (any remote.Taggable: an image, an index, a raw
// manifest) under ref, a tag or its own digest.
func (c *Client) Put(ctx context.Context, ref name.Reference, t remote.Taggable) error {
	return remote.Put(ref, t, c.RemoteOptions(ctx)...)
}

// WriteIndex pushes idx to ref (by digest or tag), with each child that
// is not yet in ref's repository.
func (c *Client) WriteIndex(ctx context.Context, ref name.Reference, idx v1.ImageIndex) error {
	err := remote.WriteIndex(ref, idx, c.RemoteOptions(ctx)...)
	return Classify(ref.String(), "push", err)
}

// Referrers lists the manifests that name d as their subject and have
// artifactType, through the registry's Referrers API or, where it has
// none, the OCI fallback tag (sha256-<hex>) go-containerregistry keeps.
func (c *Client) Referrers(ctx context.Context, d name.Digest, artifactType string) (*v1.IndexManifest, error) {
	idx, err := remote.Referrers(d, append(c.RemoteOptions(ctx), remote.WithFilter("artifactType", artifactType))...)
	if err != nil {
		return nil, Classify(d.String(), "list referrers of", err)
	}
	return idx.IndexManifest()
}
