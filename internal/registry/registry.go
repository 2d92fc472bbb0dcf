// Package registry is cipack's only door to OCI registries. It wraps
// go-containerregistry's remote package with one keychain (docker config,
// CNB_REGISTRY_AUTH, a GitHub token for ghcr.io), retries with backoff for
// 429/5xx/timeouts, and turns registry failures into exit.Errors that say
// which image failed and what to do.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/buildpacks/lifecycle/auth"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cipack/cipack/internal/exit"
)

// Options configure a Client. The caller reads them from flags and the
// environment; this package never reads env vars itself.
type Options struct {
	// Insecure lists registries (host[:port]) that may be spoken to over
	// plain HTTP. Loopback and private addresses need no entry: ggcr
	// already allows HTTP there.
	Insecure []string
	// CNBRegistryAuth is the value of CNB_REGISTRY_AUTH, if any: a JSON map
	// from registry to an Authorization header value.
	CNBRegistryAuth string
	// GitHubToken, when set, authenticates to ghcr.io (GITHUB_TOKEN).
	GitHubToken string
	GitHubActor string
	// Username and Password, when set, are used for Registries (the
	// action's registry-username / registry-password inputs).
	Username, Password string
	Registries         []string
	// Images are every image the command reads or writes, as far as it
	// knows them up front: the lifecycle's DefaultKeychain resolves its
	// ECR/ACR helpers for them.
	Images []string
	// DockerConfigDir is the docker config directory DefaultKeychain reads
	// (DOCKER_CONFIG, else ~/.docker), checked up front when set.
	DockerConfigDir string
	// Transport overrides the HTTP transport (tests count requests with it).
	Transport http.RoundTripper
	// Timeout bounds every request: connect and first byte, then each
	// silence of the body. Zero means DefaultTimeout.
	Timeout time.Duration
}

// retryBackoff is the backoff of every retried registry request.
var retryBackoff = remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 4}

// pushCheckRetryCodes are the statuses the push check retries. remote
// does not export its default list (remote/options.go, v0.22.1): this is
// that list, used only for the one request cipack makes outside remote.
var pushCheckRetryCodes = []int{http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
	http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, 499, 522}

// Client reads and checks images.
type Client struct {
	opts      Options
	keychain  authn.Keychain
	transport http.RoundTripper
}

// New builds a Client. It fails only if CNBRegistryAuth is malformed.
// Its keychain is, in order: CNB_REGISTRY_AUTH (the lifecycle's
// EnvKeychain), the username/password pair for Registries, the GitHub
// token for ghcr.io, the docker config (DOCKER_CONFIG), and the lifecycle's
// DefaultKeychain for Images, which adds its ECR and ACR credential
// helpers: the preflight accepts what the lifecycle accepts.
func New(opts Options) (*Client, error) {
	if opts.DockerConfigDir != "" {
		if err := checkDockerConfig(opts.DockerConfigDir); err != nil {
			return nil, err
		}
	}
	env, err := newEnvKeychain(opts.CNBRegistryAuth)
	if err != nil {
		return nil, exit.New(exit.Usage, "CNB_REGISTRY_AUTH", err,
			`set it to a JSON object such as {"registry.example": "Basic <base64 user:pass>"}`)
	}
	chains := []authn.Keychain{env}
	if opts.Username != "" || opts.Password != "" {
		chains = append(chains, staticKeychain{registries: opts.Registries, auth: authn.AuthConfig{Username: opts.Username, Password: opts.Password}})
	}
	if opts.GitHubToken != "" {
		chains = append(chains, githubKeychain{actor: opts.GitHubActor, token: opts.GitHubToken})
	}
	chains = append(chains, authn.DefaultKeychain)
	if len(opts.Images) > 0 {
		lc, err := auth.DefaultKeychain(opts.Images...)
		if err != nil {
			return nil, exit.New(exit.Usage, "CNB_REGISTRY_AUTH", err, "fix the variable's JSON")
		}
		chains = append(chains, lc)
	}
	base := opts.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	base = &deadlineTransport{next: base, timeout: opts.Timeout}
	return &Client{opts: opts, keychain: authn.NewMultiKeychain(chains...), transport: newPingCache(base)}, nil
}

// Anonymous is c without any credential: for images an untrusted input
// names (an app's project.toml), which must not be read with the user's
// access — a pull request could otherwise name a private image and hand
// it to build code.
func (c *Client) Anonymous() *Client {
	return &Client{opts: c.opts, keychain: authn.NewMultiKeychain(), transport: c.transport}
}

// IsInsecure reports whether registry was opted in to plain HTTP.
func (c *Client) IsInsecure(registry string) bool {
	return slices.Contains(c.opts.Insecure, registry)
}

// Parse parses an image reference, honouring the insecure opt-in.
func (c *Client) Parse(ref string) (name.Reference, error) {
	var nopts []name.Option
	if r, err := name.ParseReference(ref); err == nil && c.IsInsecure(r.Context().RegistryStr()) {
		nopts = append(nopts, name.Insecure)
	}
	return name.ParseReference(ref, nopts...)
}

// RemoteOptions are the options for every remote call: auth, context,
// bounded retries for transient failures.
func (c *Client) RemoteOptions(ctx context.Context) []remote.Option {
	// go-containerregistry's own retries, with its default status codes;
	// only the backoff is shorter than its 1 s × 3 so a CI job is not
	// held long by a blip (the deadline transport bounds silent servers).
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithRetryBackoff(retryBackoff),
	}
	return append(opts, remote.WithTransport(c.transport))
}

// CheckPush verifies that the credentials may push to ref's repository
// without writing anything that a user could see (no manifest, no tag): it
// opens a blob upload with a push-scoped token and cancels it, as
// go-containerregistry's CheckPushPermission does, but bounded by ctx.
func (c *Client) CheckPush(ctx context.Context, ref name.Reference) error {
	repo := ref.Context()
	auth, err := authn.Resolve(ctx, c.keychain, repo)
	if err != nil {
		return fmt.Errorf("resolve credentials for %s: %w", repo.RegistryStr(), err)
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, c.transport, []string{repo.Scope(transport.PushScope)})
	if err != nil {
		return Classify(ref.String(), "push", err)
	}
	client := &http.Client{Transport: transport.NewRetry(tr, transport.WithRetryBackoff(retryBackoff), transport.WithRetryStatusCodes(pushCheckRetryCodes...))}
	u := url.URL{Scheme: repo.Registry.Scheme(), Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/blobs/uploads/"}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Classify(ref.String(), "push", err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusAccepted); err != nil {
		return Classify(ref.String(), "push", err)
	}
	// Give the upload session back, without waiting for it: best effort
	// (a failure says nothing about the push permission, and registries
	// expire sessions anyway), and off the build's critical path.
	if loc, err := resp.Location(); err == nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if req, err := http.NewRequestWithContext(ctx, http.MethodDelete, loc.String(), nil); err == nil {
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	return nil
}

// Head returns the descriptor of ref (one HEAD request, no body).
func (c *Client) Head(ctx context.Context, ref name.Reference) (*v1.Descriptor, error) {
	d, err := remote.Head(ref, c.RemoteOptions(ctx)...)
	if err != nil {
		return nil, Classify(ref.String(), "read", err)
	}
	return d, nil
}

// Config fetches the manifest and config (never a layer) of ref's image
// for the host's platform: what every metadata read of a builder needs.
// An index is resolved by ImageFor, explicitly.
func (c *Client) Config(ctx context.Context, ref name.Reference) (v1.Image, *v1.ConfigFile, error) {
	return c.ConfigFor(ctx, ref, HostPlatform())
}

// ConfigFor is Config for platform p.
func (c *Client) ConfigFor(ctx context.Context, ref name.Reference, p v1.Platform) (v1.Image, *v1.ConfigFile, error) {
	img, err := c.ImageFor(ctx, ref, p)
	if err != nil {
		return nil, nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, Classify(ref.String(), "read config of", err)
	}
	return img, cf, nil
}

// LifecycleAuth renders the credentials for images as the
// CNB_REGISTRY_AUTH value the lifecycle reads, with the lifecycle's own
// auth.BuildEnvVar. Anonymous registries are left out.
func (c *Client) LifecycleAuth(images ...string) (string, error) {
	return auth.BuildEnvVar(c.keychain, images...)
}

// Classify turns an error from a registry call on image into an exit.Error
// whose code and hint say what went wrong: credentials, reachability or a
// missing image.
func Classify(image, action string, err error) error {
	if err == nil {
		return nil
	}
	// A local write that failed (a full disk while a layer is unpacked or
	// a blob kept) is not the registry's fault: name the disk.
	if ns := exit.NoSpace("", err); ns != nil {
		return ns
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return exit.New(exit.RegistryAuth, image, fmt.Errorf("registry refused to let these credentials %s: %w", action, err),
				"check the registry credentials (docker config in DOCKER_CONFIG, CNB_REGISTRY_AUTH, or the action's registry inputs)")
		case http.StatusNotFound:
			return exit.New(exit.ImageNotFound, image, fmt.Errorf("image not found: %w", err), "check the image reference and that it was pushed")
		}
		for _, d := range te.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
				return exit.New(exit.ImageNotFound, image, fmt.Errorf("image not found: %w", err), "check the image reference and that it was pushed")
			}
		}
	}
	var to *TimeoutError
	if errors.As(err, &to) {
		return exit.New(exit.RegistryUnreachable, image, fmt.Errorf("%s: %w", action, err),
			"the registry accepted the connection but did not answer: check its health, or raise --registry-timeout (CIPACK_REGISTRY_TIMEOUT)")
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return exit.New(exit.RegistryUnreachable, image, fmt.Errorf("registry unreachable: %w", err),
			"the registry speaks plain HTTP: pass --insecure-registry for it")
	}
	if isNetwork(err) {
		return exit.New(exit.RegistryUnreachable, image, fmt.Errorf("registry unreachable: %w", err),
			"check the registry host and port, and the network")
	}
	return fmt.Errorf("%s %s: %w", action, image, err)
}

func isNetwork(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	// A bare errno is a net.Error too (it has Timeout and Temporary): one
	// from a local file operation says nothing about the network.
	var pe *fs.PathError
	if errors.As(err, &pe) && !errors.As(err, &oe) && !errors.As(err, &de) {
		return false
	}
	return errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &ne) ||
		errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "connection refused") ||
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}
