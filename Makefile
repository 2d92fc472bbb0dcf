# cipack — see README.md. `make demo` runs the main job, `make test` the tests.
SHELL := /bin/bash
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/cipack/cipack/internal/cli.Version=$(VERSION)
APT_PACKAGES := busybox-static docker-registry util-linux coreutils curl git podman runc
# Test modules kept apart so their heavy dependencies stay out of go.mod.
NESTED := tekton/tektontest action/acttest
export CGO_ENABLED := 0

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

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cipack ./cmd/cipack

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

# Release assets for the action's download path: static binaries and checksums.
DIST ?= dist
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	for arch in amd64 arm64; do \
	  GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/cipack_linux_$$arch ./cmd/cipack || exit 1; \
	done
	cd $(DIST) && sha256sum cipack_linux_* > checksums.txt && cat checksums.txt

# Prepares a release commit: the Tasks' default image becomes the release's.
# Then tag it (git tag VERSION) and push the tag: .github/workflows/release.yml
# does the rest.
release-prep:
	@test -n "$(filter v%,$(VERSION))" || { echo "usage: make release-prep VERSION=vX.Y.Z"; exit 2; }
	sed -i 's|default: ghcr.io/cipack/cipack:v[0-9.]*$$|default: ghcr.io/cipack/cipack:$(VERSION)|' tekton/cipack-*.yaml
	@grep -n 'ghcr.io/cipack/cipack:' tekton/cipack-*.yaml

clean:
	rm -rf $(BIN) dist
