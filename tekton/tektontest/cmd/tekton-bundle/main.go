// Command tekton-bundle pushes the OCI Tekton bundle of the given Task
// files (package bundle) to --image and prints it by digest, the
// reference to pin in a TaskRun's bundles resolver. Credentials come from
// the docker config, as for any go-containerregistry client.
//
//	go run ./cmd/tekton-bundle --image ghcr.io/cipack/tekton-bundle:v0.1.0 ../cipack-*.yaml
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/tekton/tektontest/bundle"
)

func main() {
	image := flag.String("image", "", "the bundle's tag, e.g. ghcr.io/cipack/tekton-bundle:v0.1.0")
	insecure := flag.Bool("insecure", false, "allow a plain-HTTP registry (tests)")
	flag.Parse()
	if err := run(*image, *insecure, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "tekton-bundle:", err)
		os.Exit(1)
	}
}

func run(image string, insecure bool, files []string) error {
	if image == "" || len(files) == 0 {
		return fmt.Errorf("usage: tekton-bundle --image REF TASK.yaml...")
	}
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	ref, err := name.NewTag(image, opts...)
	if err != nil {
		return fmt.Errorf("--image: %w", err)
	}
	var resources []bundle.Resource
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		resources = append(resources, bundle.Resource{Source: f, Data: b})
	}
	img, err := bundle.Image(resources)
	if err != nil {
		return err
	}
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Println(ref.Context().Name() + "@" + d.String())
	return nil
}
