# cipack: a static binary in a minimal image. In Tekton the build step runs
# in the *builder* image and only copies /usr/local/bin/cipack out of this
# one, so the final stage holds nothing else but CA certificates.
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

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/cipack /usr/local/bin/cipack
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cipack"]
