package pull

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipack/cipack/internal/exit"
)

// A builder whose manifest sends the client elsewhere for a layer is
// refused before anything is fetched.
func TestForeignLayersAreRefused(t *testing.T) {
	l, err := random.Layer(64, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := mutate.Append(empty.Image, mutate.Addendum{Layer: l})
	if err != nil {
		t.Fatal(err)
	}
	if err := refuseForeignLayers("reg.example/b", plain); err != nil {
		t.Fatalf("a plain builder: %v", err)
	}
	for name, add := range map[string]mutate.Addendum{
		"urls":    {Layer: l, URLs: []string{"http://localhost:48123/a"}},
		"foreign": {Layer: l, MediaType: types.DockerForeignLayer},
	} {
		img, err := mutate.Append(empty.Image, add)
		if err != nil {
			t.Fatal(err)
		}
		err = refuseForeignLayers("reg.example/b", img)
		if exit.Code(err) != exit.Sandbox || !strings.Contains(err.Error(), "foreign layer") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
