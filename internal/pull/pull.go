// Package pull is pull mode's first half: it resolves a builder image by
// digest (the child for this host's platform when it is an index), reads
// its config, and makes sure each of its layers is in a verified layer
// store on the host, unpacked as an overlayfs lower layer, so that a new
// builder version unpacks only the layers that changed. The sandbox
// package then runs the lifecycle on those layers.
//
// What the store holds is run as the build, so it is trusted only as far
// as it can be checked: each layer is hashed against its diffID while it
// is extracted, completed with a marker written last, sealed (see seal.go)
// so a tree changed afterwards is noticed, locked so builds sharing a
// store do not race, and kept in a directory only cipack's user can
// enter.
package pull

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// Builder is a builder image whose layers are in the store.
type Builder struct {
	Ref    string // the builder by digest
	Digest string // the resolved image's digest (the platform child of an index)
	// Layers are the layers' unpacked trees, lowest first: overlayfs
	// lower dirs, and what Files reads.
	Layers []string
	Env    []string
	// UID and GID are the builder's CNB_USER_ID and CNB_GROUP_ID ("" when
	// it sets none). Whether they are acceptable is the caller's policy.
	UID, GID string
	Labels   map[string]string
	// Unpacked counts the layers unpacked by this call, Verified the
	// layers found in the store whose seal matched.
	Unpacked, Verified int
	// Repaired says, per layer, why a stored tree was thrown away and
	// unpacked again (it had changed since it was verified, or its
	// unpack never finished).
	Repaired []string
}

// parallelLayers bounds the layers fetched, unpacked or checked at once:
// enough to overlap the network with the disk, few enough for 2 cores.
const parallelLayers = 3

// Prepare resolves ref for the host's platform, and makes sure each of
// its layers is unpacked and verified under cacheDir (see openStore for
// the layout).
func Prepare(ctx context.Context, reg *registry.Client, ref, cacheDir string) (*Builder, error) {
	return PrepareWith(ctx, reg, ref, cacheDir, "")
}

// PrepareWith is Prepare that also keeps the builder's compressed layer
// blobs in blobs (when not empty): every layer's blob is there afterwards,
// verified, and unpacking reads it instead of the registry; blobs of
// layers this builder does not have are removed.
func PrepareWith(ctx context.Context, reg *registry.Client, ref, cacheDir string, blobs Blobs) (*Builder, error) {
	r, err := reg.Parse(ref)
	if err != nil {
		return nil, exit.Usagef("--builder", "", "invalid builder reference %q: %v", ref, err)
	}
	st, err := openStore(cacheDir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	img, cf, err := reg.ConfigFor(ctx, r, registry.HostPlatform())
	if err != nil {
		return nil, registry.BuilderPlatform(err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, registry.Classify(ref, "read", err)
	}
	b := &Builder{Ref: r.Context().Digest(digest.String()).String(), Digest: digest.String(), Env: cf.Config.Env, Labels: cf.Config.Labels}
	b.UID, b.GID = cnbIDs(cf.Config.Env)
	layers, err := img.Layers()
	if err != nil {
		return nil, registry.Classify(ref, "read layers of", err)
	}
	if err := refuseForeignLayers(ref, img); err != nil {
		return nil, err
	}
	if err := st.cleanStale(); err != nil {
		return nil, fmt.Errorf("builder %s: %w", ref, err)
	}
	from := func(_ context.Context, l v1.Layer) (v1.Layer, error) { return l, nil }
	var bc *blobCache
	if blobs != "" {
		if bc, err = blobs.open(); err != nil {
			return nil, blobsError(blobs, err)
		}
		defer bc.Close()
		from = bc.layer
	}
	results, err := ensureAll(ctx, st, b.Ref, layers, from)
	if err != nil {
		return nil, err
	}
	if bc != nil {
		if err := bc.tidy(ctx, layers); err != nil {
			return nil, fmt.Errorf("builder %s: prune %s: %w", ref, blobs, err)
		}
	}
	for _, res := range results {
		b.Layers = append(b.Layers, res.path)
		switch {
		case res.unpacked && res.repaired != "":
			b.Unpacked++
			b.Repaired = append(b.Repaired, res.repaired)
		case res.unpacked:
			b.Unpacked++
		default:
			b.Verified++
		}
	}
	return b, nil
}

// blobsError names --builder-blobs for a blob cache that could not be
// opened: its own exit code when it has one, a full disk as one (exit
// 13, naming the directory), else a directory cipack cannot use.
func blobsError(b Blobs, err error) error {
	if exit.Typed(err) {
		return err
	}
	if ns := exit.NoSpace(string(b), err); ns != nil {
		return ns
	}
	return exit.New(exit.Usage, "--builder-blobs", err, "name a directory cipack can write")
}

// ensureAll runs st.ensure on every layer, a few at a time, and returns
// the results in the layers' order. The first failure cancels the rest.
// from gives the layer to read: the registry's, or its kept blob.
func ensureAll(ctx context.Context, st *store, ref string, layers []v1.Layer, from func(context.Context, v1.Layer) (v1.Layer, error)) ([]layerResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]layerResult, len(layers))
	errs := make([]error, len(layers))
	sem := make(chan struct{}, parallelLayers)
	var wg sync.WaitGroup
	for i, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				errs[i] = ctx.Err()
				return
			}
			job := layerJob{ref: ref, index: i + 1, count: len(layers)}
			if job.layer, errs[i] = from(ctx, l); errs[i] == nil {
				results[i], errs[i] = st.ensure(ctx, job)
			} else {
				errs[i] = fmt.Errorf("builder %s: %s: %w", ref, job, errs[i])
			}
			if errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	// Report the failure that caused the others' cancellation.
	var canceled error
	for _, err := range errs {
		switch {
		case err == nil:
		case !errors.Is(err, context.Canceled):
			return nil, err
		case canceled == nil:
			canceled = err
		}
	}
	if canceled != nil {
		return nil, fmt.Errorf("builder %s: %w", ref, canceled)
	}
	return results, nil
}

// cnbIDs reads CNB_USER_ID and CNB_GROUP_ID from a config's Env (the last
// one wins, as in a process environment).
func cnbIDs(env []string) (uid, gid string) {
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "CNB_USER_ID="); ok {
			uid = v
		}
		if v, ok := strings.CutPrefix(e, "CNB_GROUP_ID="); ok {
			gid = v
		}
	}
	return uid, gid
}

// ID parses a numeric user or group id.
func ID(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}

// refuseForeignLayers refuses a builder whose manifest sends the client
// elsewhere for a layer (URLs, or a non-distributable media type): a
// registry's answer must not make cipack, as root, fetch a URL of its
// choosing. Builders never need them.
func refuseForeignLayers(ref string, img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return registry.Classify(ref, "read", err)
	}
	for i, l := range m.Layers {
		if len(l.URLs) > 0 || !l.MediaType.IsDistributable() {
			return exit.New(exit.Sandbox, "--builder", fmt.Errorf("builder %s: layer %d (%s) is a foreign layer (%s, %d URLs)", ref, i+1, l.Digest, l.MediaType, len(l.URLs)),
				"use a builder whose layers are all in its registry")
		}
	}
	return nil
}
