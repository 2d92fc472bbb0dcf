package registry

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Writes are retried whole: go-containerregistry retries single requests,
// but not a blob upload that a registry interrupts half-way (a 429 on a
// PATCH). Writing a manifest or blob again is idempotent.
const writeAttempts = 3

// Write pushes img to ref (by digest or tag).
func (c *Client) Write(ctx context.Context, ref name.Reference, img v1.Image) error {
	return c.retry(ctx, func() error { return remote.Write(ref, img, c.RemoteOptions(ctx)...) })
}

// Tag points tag at img's manifest.
func (c *Client) Tag(ctx context.Context, tag name.Tag, img remote.Taggable) error {
	return c.retry(ctx, func() error { return remote.Tag(tag, img, c.RemoteOptions(ctx)...) })
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
	return c.retry(ctx, func() error { return remote.Put(ref, t, c.RemoteOptions(ctx)...) })
}

func (c *Client) retry(ctx context.Context, op func() error) error {
	// transport.Error keeps no headers, so Retry-After is not seen: a
	// first wait of one second covers the common "Retry-After: 1".
	wait := time.Second
	var err error
	for attempt := 1; attempt <= writeAttempts; attempt++ {
		if err = op(); err == nil || !retryable(err) || attempt == writeAttempts {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
	return err
}

func retryable(err error) bool {
	var to *TimeoutError
	if errors.As(err, &to) {
		return false // a silent registry stays silent: do not multiply the wait
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode == http.StatusTooManyRequests || te.StatusCode >= 500
	}
	return isNetwork(err)
}

// WriteIndex pushes idx to ref (by digest or tag), with each child that
// is not yet in ref's repository.
func (c *Client) WriteIndex(ctx context.Context, ref name.Reference, idx v1.ImageIndex) error {
	err := c.retry(ctx, func() error { return remote.WriteIndex(ref, idx, c.RemoteOptions(ctx)...) })
	return Classify(ref.String(), "push", err)
}
