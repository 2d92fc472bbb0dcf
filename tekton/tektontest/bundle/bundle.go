// Package bundle makes the OCI Tekton bundle of cipack's Tasks, the image
// Tekton's bundles resolver reads (tektoncd/pipeline v1.15.0:
// pkg/resolution/resolver/bundle and pkg/remote/oci), laid out as
// `tkn bundle push` lays it out: one layer per resource, each a tar
// holding the resource as its one file, annotated with the resource's
// dev.tekton.image.apiVersion, .kind (lowercase, singular) and .name.
package bundle

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"
)

// The layer annotations of Tekton's bundle contract (pipeline's
// bundle.BundleAnnotation*, remote/oci's *Annotation).
const (
	AnnotationAPIVersion = "dev.tekton.image.apiVersion"
	AnnotationKind       = "dev.tekton.image.kind"
	AnnotationName       = "dev.tekton.image.name"
)

// MaxObjects is the most resources Tekton's bundles resolver takes from
// one bundle (bundle.MaximumBundleObjects in pipeline v1.15.0).
const MaxObjects = 20

// Resource is one Tekton resource of the bundle: its YAML (or JSON).
type Resource struct {
	Source string // where it came from, for errors
	Data   []byte
}

// Image makes the bundle of the resources, in their order, with fixed
// timestamps: the same files make the same digest. Each resource is
// stored as JSON (the resolver decodes YAML and JSON alike).
func Image(resources []Resource) (v1.Image, error) {
	if len(resources) == 0 || len(resources) > MaxObjects {
		return nil, fmt.Errorf("a Tekton bundle holds 1 to %d resources, not %d", MaxObjects, len(resources))
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	seen := map[string]bool{}
	for _, r := range resources {
		js, err := yaml.YAMLToJSON(r.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Source, err)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(js, &meta); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Source, err)
		}
		if meta.APIVersion == "" || meta.Kind == "" || meta.Metadata.Name == "" {
			return nil, fmt.Errorf("%s: not a Tekton resource (apiVersion, kind and metadata.name are needed)", r.Source)
		}
		kind := strings.ToLower(meta.Kind)
		if seen[kind+"/"+meta.Metadata.Name] {
			return nil, fmt.Errorf("%s: a second %s named %s", r.Source, kind, meta.Metadata.Name)
		}
		seen[kind+"/"+meta.Metadata.Name] = true
		layer, err := tarLayer(kind+"-"+meta.Metadata.Name, js)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer, Annotations: map[string]string{
			AnnotationAPIVersion: meta.APIVersion,
			AnnotationKind:       kind,
			AnnotationName:       meta.Metadata.Name,
		}})
		if err != nil {
			return nil, err
		}
	}
	return mutate.CreatedAt(img, v1.Time{Time: time.Unix(0, 0).UTC()})
}

// tarLayer is a gzipped tar holding one file, as tkn writes it.
func tarLayer(name string, data []byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, tarball.WithMediaType(types.OCILayer))
}
