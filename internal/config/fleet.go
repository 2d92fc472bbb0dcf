// Package config reads the fleet file: the list of app images that
// `cipack rebase` keeps patched, with their builders, run-image mirrors and
// rebuild triggers. It is decoded strictly (unknown keys are errors) and
// every error names the file, the line and the key.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"go.yaml.in/yaml/v3"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/rebase"
	"github.com/cipack/cipack/internal/redact"
	"github.com/cipack/cipack/internal/safefs"
)

// Fleet is the whole file.
type Fleet struct {
	Defaults Defaults `yaml:"defaults"`
	Images   []Image  `yaml:"images"`
}

// Defaults apply to every image that does not set its own value.
type Defaults struct {
	Builder         string   `yaml:"builder"`
	RunImageMirrors []string `yaml:"runImageMirrors"`
	Trigger         *Trigger `yaml:"trigger"`
}

// Image is one app image to keep patched.
type Image struct {
	// Image is the reference whose current digest is checked and moved.
	Image string `yaml:"image"`
	// Tags are more tags that must always point at the same digest.
	Tags []string `yaml:"tags"`
	// Builder whose buildpacks the image is compared with; empty: no
	// buildpack check (only the run image is watched).
	Builder string `yaml:"builder"`
	// RunImage overrides the run image recorded in the image (e.g. a
	// mirror closer to the image's registry).
	RunImage        string   `yaml:"runImage"`
	RunImageMirrors []string `yaml:"runImageMirrors"`
	// AllowRunImageRename lets a rebase move the image onto a run image
	// whose name is neither the recorded one nor one of its mirrors.
	AllowRunImageRename bool     `yaml:"allowRunImageRename"`
	Trigger             *Trigger `yaml:"trigger"`
}

// Trigger says how to start an app's own rebuild.
type Trigger struct {
	Webhook *Webhook `yaml:"webhook"`
}

// Webhook is an HTTP POST with a JSON payload.
type Webhook struct {
	URL string `yaml:"url"`
	// TokenEnv names the environment variable holding a bearer token.
	TokenEnv string `yaml:"tokenEnv"`
	// EventType, when set, wraps the payload as GitHub's
	// repository_dispatch body: {"event_type": ..., "client_payload": ...}.
	EventType string `yaml:"eventType"`
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// maxFleetFile bounds the fleet file: thousands of images fit in far less.
const maxFleetFile = 16 << 20

// Load reads and validates a fleet file. The user named it, so links on
// its path are followed; but a FIFO or a device named by mistake must
// fail, not hang the sweep or fill memory, so only a bounded regular file
// is read.
func Load(path string) (*Fleet, error) {
	b, err := safefs.ReadUserFile(path, maxFleetFile)
	if err != nil {
		return nil, exit.Usagef("--config", "point it at a readable fleet file (see examples/fleet.yaml)", "%v", err)
	}
	return Parse(path, b)
}

// Parse decodes and validates fleet YAML; path is only used in messages.
func Parse(path string, data []byte) (*Fleet, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f Fleet
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail(path, 0, "", "the file is empty", "list the images to watch under images:")
		}
		return nil, exit.Usagef(path, "fix the YAML (see examples/fleet.yaml for the schema)", "%s", yamlMessage(err))
	}
	// The lines take a second pass over the node tree, as costly as the
	// decode (about 50 ms for 10,000 images): made only for a message.
	if err := f.validate(path, nil); err != nil {
		return nil, f.validate(path, imageLines(data))
	}
	return &f, nil
}

// imageLines gives each image entry's line in data: a second pass over
// the node tree.
func imageLines(data []byte) []int {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil
	}
	var out []int
	if imgs := lookup(&root, "images"); imgs != nil {
		for _, n := range imgs.Content {
			out = append(out, n.Line)
		}
	}
	return out
}

// validate checks the fleet; lines (may be short or nil) say where each
// image starts, for messages.
func (f *Fleet) validate(path string, lines []int) error {
	if len(f.Images) == 0 {
		return fail(path, 0, "images", "no images listed", "add at least one entry with an image: key")
	}
	if err := checkRef(path, 0, "defaults.builder", f.Defaults.Builder); err != nil {
		return err
	}
	if err := f.Defaults.Trigger.validate(path, 0, "defaults.trigger"); err != nil {
		return err
	}
	seen := map[string]string{}
	for i, img := range f.Images {
		key, line := fmt.Sprintf("images[%d]", i), 0
		if i < len(lines) {
			line = lines[i]
		}
		if img.Image == "" {
			return fail(path, line, key+".image", "missing", "every entry needs the image reference to watch")
		}
		if err := checkTag(path, line, key+".image", img.Image); err != nil {
			return err
		}
		// One tag, however it is spelled (img and img:latest, a registry's
		// default host), is swept and moved once.
		c := rebase.CanonicalImage(img.Image)
		if prev, dup := seen[c]; dup {
			return fail(path, line, key+".image", fmt.Sprintf("%s is listed twice (first at %s)", img.Image, prev), "list each image once")
		}
		seen[c] = key + ".image"
		for j, t := range img.Tags {
			at := fmt.Sprintf("%s.tags[%d]", key, j)
			if err := checkTag(path, line, at, t); err != nil {
				return err
			}
			c := rebase.CanonicalImage(t)
			if prev, dup := seen[c]; dup {
				return fail(path, line, at, fmt.Sprintf("%s is listed twice (first at %s)", t, prev), "list each tag once, under one image")
			}
			seen[c] = at
		}
		for _, kv := range [][2]string{{key + ".builder", img.Builder}, {key + ".runImage", img.RunImage}} {
			if err := checkRef(path, line, kv[0], kv[1]); err != nil {
				return err
			}
		}
		for j, m := range img.RunImageMirrors {
			if err := checkRef(path, line, fmt.Sprintf("%s.runImageMirrors[%d]", key, j), m); err != nil {
				return err
			}
		}
		if err := img.Trigger.validate(path, line, key+".trigger"); err != nil {
			return err
		}
	}
	return nil
}

func (t *Trigger) validate(path string, line int, key string) error {
	if t == nil {
		return nil
	}
	if t.Webhook == nil {
		return fail(path, line, key, "no webhook", "set trigger.webhook.url, or remove the trigger")
	}
	u, err := url.Parse(t.Webhook.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fail(path, line, key+".webhook.url", fmt.Sprintf("%s is not an http(s) URL", redact.URL(t.Webhook.URL)), "give the full URL of the EventListener or dispatch endpoint")
	}
	if u.Scheme == "http" && !redact.IsLoopbackURL(u) {
		return fail(path, line, key+".webhook.url", fmt.Sprintf("%s is plain http", redact.URL(t.Webhook.URL)),
			"use https: the payload and token would cross the network in clear (http is allowed only to loopback)")
	}
	if t.Webhook.TokenEnv != "" && (!envName.MatchString(t.Webhook.TokenEnv) || redact.LooksLikeToken(t.Webhook.TokenEnv)) {
		// Never echo it: a pasted token is the common mistake here.
		return fail(path, line, key+".webhook.tokenEnv", "not an environment variable name (the value is not shown, in case it is a token)",
			"name the variable that holds the token, e.g. CIPACK_TRIGGER_TOKEN, not the token")
	}
	if redact.IsCredentialVar(t.Webhook.TokenEnv) {
		return fail(path, line, key+".webhook.tokenEnv", t.Webhook.TokenEnv+" holds cipack's registry credentials",
			"give the webhook its own token variable: cipack never sends its registry or GitHub credentials to a fleet's URL")
	}
	return nil
}

// For returns the effective settings of image i: its own, else the defaults.
func (f *Fleet) For(i int) Image {
	img := f.Images[i]
	if img.Builder == "" {
		img.Builder = f.Defaults.Builder
	}
	if len(img.RunImageMirrors) == 0 {
		img.RunImageMirrors = f.Defaults.RunImageMirrors
	}
	if img.Trigger == nil {
		img.Trigger = f.Defaults.Trigger
	}
	return img
}

func checkRef(path string, line int, key, ref string) error {
	if ref == "" {
		return nil
	}
	if _, err := name.ParseReference(ref); err != nil {
		return fail(path, line, key, fmt.Sprintf("%q is not an image reference", ref), "use registry.example/team/app:tag")
	}
	return nil
}

// checkTag accepts a tag reference only: rebase moves tags, and a digest
// cannot move.
func checkTag(path string, line int, key, ref string) error {
	if err := checkRef(path, line, key, ref); err != nil {
		return err
	}
	if _, err := name.NewDigest(ref); err == nil {
		return fail(path, line, key, fmt.Sprintf("%q is a digest", ref), "list a tag (registry.example/team/app:latest): rebase moves tags to the new digest")
	}
	return nil
}

func fail(path string, line int, key, problem, hint string) error {
	where := path
	if line > 0 {
		where = fmt.Sprintf("%s:%d", path, line)
	}
	if key != "" {
		where += ": " + key
	}
	return exit.Usagef(where, hint, "%s", problem)
}

// yamlMessage keeps yaml.v3's "line N: field x not found in type y" but
// drops the Go type names, which mean nothing to a user.
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = regexp.MustCompile(` in type config\.\w+`).ReplaceAllString(msg, "")
	return strings.ReplaceAll(msg, "field ", "unknown key ")
}

func lookup(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Targets translates the file into the rebase engine's targets, each
// entry over the defaults.
func (f *Fleet) Targets() []rebase.Target {
	out := make([]rebase.Target, len(f.Images))
	for i := range f.Images {
		img := f.For(i)
		out[i] = rebase.Target{Image: img.Image, Tags: img.Tags, Builder: img.Builder, RunImage: img.RunImage,
			RunImageMirrors: img.RunImageMirrors, AllowRunImageRename: img.AllowRunImageRename, Trigger: img.Trigger.target()}
	}
	return out
}

func (t *Trigger) target() *rebase.Trigger {
	if t == nil {
		return nil
	}
	out := &rebase.Trigger{}
	if t.Webhook != nil {
		out.Webhook = &rebase.Hook{URL: t.Webhook.URL, TokenEnv: t.Webhook.TokenEnv, EventType: t.Webhook.EventType}
	}
	return out
}
