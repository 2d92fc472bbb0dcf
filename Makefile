# cipack — see README.md. `make demo` runs the main job, `make test` the tests.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/cipack/cipack/internal/cli.Version=$(VERSION)
# Pull mode's trusted lifecycle: built from the lifecycle module go.mod pins
# (its tool directive), from this module, next to cipack. cipack checks the
# module path, version and sum Go records in them (debug/buildinfo), so
# these flags must not add a replace or another module version.
LIFECYCLE_BINS := lifecycle launcher
LIFECYCLE_PKG := github.com/buildpacks/lifecycle/cmd
LIFECYCLE_LDFLAGS := -s -w
APT_PACKAGES := bash-static busybox-static docker-registry util-linux coreutils curl git podman runc sudo passt slirp4netns iproute2
# Test modules kept apart so their heavy dependencies stay out of go.mod.
NESTED := tekton/tektontest action/acttest
export CGO_ENABLED := 0
STATICCHECK_VERSION := v0.8.2

.PHONY: all setup build test unit e2e bench lint tidy demo image release release-prep clean

all: build

# Installs what the tests and the demo run against (idempotent, root).
setup:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@$(GO) mod download
	@for m in $(NESTED); do (cd $$m && $(GO) mod download); done

# bin/cipack and, next to it, the lifecycle and launcher its pull mode
# runs the credential phases with.
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cipack ./cmd/cipack
	$(GO) build -trimpath -ldflags '$(LIFECYCLE_LDFLAGS)' -o $(BIN)/ $(addprefix $(LIFECYCLE_PKG)/,$(LIFECYCLE_BINS))

# The README's test command: unit and end-to-end tests with real parts.
test: setup lint
	$(GO) test -count=1 -timeout 40m ./...
	@for m in $(NESTED); do echo "== $$m"; (cd $$m && $(GO) test -count=1 -timeout 30m ./...) || exit 1; done

unit:
	$(GO) test -count=1 -short ./...
	@for m in $(NESTED); do (cd $$m && $(GO) test -count=1 -short ./...) || exit 1; done

e2e: setup
	$(GO) test -count=1 -timeout 30m -v ./internal/e2e/...

# Benchmarks against the anchors they name (the bare lifecycle creator).
bench: setup
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 7x -timeout 30m ./internal/e2e/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@for m in $(NESTED); do (cd $$m && $(GO) vet ./...) || exit 1; done

tidy:
	$(GO) mod tidy
	@for m in $(NESTED); do (cd $$m && $(GO) mod tidy); done

# The main job: build examples/app into a loopback registry and run it.
demo: setup
	$(GO) run ./examples/demo

# The release image. Needs a container engine (none runs on CI here);
# the tests assemble the same layout with go-containerregistry instead.
image:
	docker build --build-arg VERSION=$(VERSION) -t cipack:$(VERSION) .

# Release assets for the action's download path: static binaries (cipack
# and the trusted lifecycle and launcher, per architecture) and checksums.
# Each lifecycle binary is checked to record the pinned lifecycle module,
# as cipack will check it.
DIST ?= dist
RELEASE_ARCHES ?= amd64 arm64
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	@pinned=$$($(GO) list -m -f '{{.Version}}' github.com/buildpacks/lifecycle) || exit 1; \
	for arch in $(RELEASE_ARCHES); do \
	  echo "== linux/$$arch (lifecycle $$pinned)"; \
	  GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/cipack_linux_$$arch ./cmd/cipack || exit 1; \
	  for b in $(LIFECYCLE_BINS); do \
	    GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LIFECYCLE_LDFLAGS)' -o $(DIST)/$${b}_linux_$$arch $(LIFECYCLE_PKG)/$$b || exit 1; \
	    $(GO) version -m $(DIST)/$${b}_linux_$$arch | grep -Eq "^[[:space:]]*path[[:space:]]+$(LIFECYCLE_PKG)/$$b$$" && \
	    $(GO) version -m $(DIST)/$${b}_linux_$$arch | grep -Eq "^[[:space:]]*(mod|dep)[[:space:]]+github.com/buildpacks/lifecycle[[:space:]]+$$pinned[[:space:]]" || \
	      { echo "$(DIST)/$${b}_linux_$$arch does not record github.com/buildpacks/lifecycle $$pinned"; exit 1; }; \
	  done; \
	done
	cd $(DIST) && sha256sum $(foreach b,cipack $(LIFECYCLE_BINS),$(foreach a,$(RELEASE_ARCHES),$(b)_linux_$(a))) > checksums.txt && cat checksums.txt

# Prepares a release commit, before tagging it: action/release-version (what
# the action at this commit installs, read by action/setup-cipack.sh), the
# Tasks' default image, and CHANGELOG.md's Unreleased section moved under the
# version (with today's date). Then commit, tag it (git tag VERSION) and push
# the tag: .github/workflows/release.yml checks the tag's commit records the
# release, publishes it and points the major tag (v1) at that same commit.
release-prep:
	@echo '$(VERSION)' | grep -Eq '^v[0-9]+\.[0-9]+\.[0-9]+$$' || { echo "usage: make release-prep VERSION=vX.Y.Z"; exit 2; }
	@grep -q '^## \[Unreleased\]' CHANGELOG.md || { echo "CHANGELOG.md has no '## [Unreleased]' section"; exit 1; }
	@! grep -q '^## \[$(VERSION)\]' CHANGELOG.md || { echo "CHANGELOG.md already has a $(VERSION) section"; exit 1; }
	echo '$(VERSION)' > action/release-version
	sed -i 's|default: ghcr.io/cipack/cipack:v[0-9.]*$$|default: ghcr.io/cipack/cipack:$(VERSION)|' tekton/cipack-*.yaml
	sed -i 's|^## \[Unreleased\].*$$|## [Unreleased]\n\n## [$(VERSION)] - '"$$(date -u +%Y-%m-%d)"'|' CHANGELOG.md
	@grep -n 'ghcr.io/cipack/cipack:' tekton/cipack-*.yaml
	@grep -n '^## \[' CHANGELOG.md | head -3

clean:
	rm -rf $(BIN) dist

# The OCI Tekton bundle of the Tasks (tekton/cipack-*.yaml), as Tekton's
# bundles resolver reads it: pushed to TEKTON_BUNDLE, printed by digest
# (the reference to pin). The release calls it after release-prep, e.g.
#   make tekton-bundle TEKTON_BUNDLE=ghcr.io/cipack/tekton-bundle:$(VERSION)
# Push credentials come from the docker config. TEKTON_BUNDLE_FLAGS=--insecure
# allows a plain-HTTP registry (tests).
TEKTON_BUNDLE ?=
TEKTON_BUNDLE_FLAGS ?=
.PHONY: tekton-bundle
tekton-bundle:
	@test -n "$(TEKTON_BUNDLE)" || { echo "usage: make tekton-bundle TEKTON_BUNDLE=REGISTRY/REPO:TAG"; exit 2; }
	@cd tekton/tektontest && $(GO) run ./cmd/tekton-bundle --image '$(TEKTON_BUNDLE)' $(TEKTON_BUNDLE_FLAGS) $(addprefix ../,$(notdir $(wildcard tekton/cipack-*.yaml)))
