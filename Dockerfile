# cipack: a static binary in a minimal image. In Tekton the build step runs
# in the *builder* image and only copies /usr/local/bin/cipack out of this
# one, so the final stage holds nothing else but CA certificates and, next
# to cipack where it looks for them, pull mode's trusted lifecycle and
# launcher (built from the lifecycle version go.mod pins, as `make build`
# does; cipack checks them before use).
# Pinned to the Go version every go.mod states (see README); bump them together.
FROM golang:1.26.4-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/cipack/cipack/internal/cli.Version=${VERSION}" \
      -o /out/cipack ./cmd/cipack
RUN for b in lifecycle launcher; do \
      CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" \
        -o "/out/$b" "github.com/buildpacks/lifecycle/cmd/$b" || exit 1; \
    done

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/cipack /out/lifecycle /out/launcher /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cipack"]
