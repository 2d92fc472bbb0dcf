package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
)

// PlaceholderLabel marks the manifest DropTag makes to remove a tag.
const PlaceholderLabel = "io.cipack.placeholder"

// DropTag removes a tag that only its caller uses (a build's staging
// tag), never the manifest it named. It first points the tag at a
// placeholder made for it (an empty image with a random label, so no
// other tag or image can be on it): some registries take a DELETE of a
// tag for one of its manifest (early zot, Harbor 1), which would delete
// the image the user's tags now hold, or an identical earlier build.
// Then it asks DELETE on the tag; where the registry refuses that
// (distribution parses the reference as a digest), it deletes the
// placeholder by digest, which takes the tags on it along. The tag is
// looked up afterwards: only a registry that no longer has it counts as
// done. A registry that will not overwrite the tag (immutable tags)
// keeps it on the image; one that refuses both deletes keeps it on the
// placeholder: the error says which.
func (c *Client) DropTag(ctx context.Context, tag name.Tag) error {
	placeholder, err := newPlaceholder()
	var d v1.Hash
	if err == nil {
		d, err = placeholder.Digest()
	}
	if err != nil {
		return fmt.Errorf("make a placeholder to drop %s: %w", tag, err)
	}
	if err := c.Write(ctx, tag, placeholder); err != nil {
		return fmt.Errorf("point %s at a placeholder to delete (it still names the image): %w", tag, err)
	}
	byDigest := func() error { return remote.Delete(tag.Context().Digest(d.String()), c.RemoteOptions(ctx)...) }
	err = c.DeleteTag(ctx, tag)
	if err == nil && c.gone(ctx, tag) {
		_ = byDigest() // the placeholder, untagged now: best effort
		return nil
	}
	if err == nil {
		// Some registries answer a DELETE they do not do with 404 (which
		// DeleteTag takes for "already gone").
		err = fmt.Errorf("the registry answered the DELETE of %s but still has the tag", tag)
	}
	if perr := byDigest(); perr != nil {
		return fmt.Errorf("%w; deleting the placeholder it now names (%s) failed too: %w", err, d, perr)
	}
	if !c.gone(ctx, tag) {
		return fmt.Errorf("%w; it now names a placeholder (%s) the registry kept", err, d)
	}
	return nil
}

// gone reports whether the registry says it does not have tag.
func (c *Client) gone(ctx context.Context, tag name.Tag) bool {
	_, err := c.Head(ctx, tag)
	return exit.Code(err) == exit.ImageNotFound
}

func newPlaceholder() (v1.Image, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "linux", Architecture: "amd64",
		Config: v1.Config{Labels: map[string]string{PlaceholderLabel: hex.EncodeToString(b[:])}},
	})
}
