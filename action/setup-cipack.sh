#!/bin/sh
# Finds the cipack binary that matches this action, without Docker:
#   1. a cipack already on PATH (e.g. baked into the builder image);
#   2. for a release version (vX.Y.Z): the release asset, verified against
#      the release's checksums file;
#   3. else: built from the action's own source, where Go is present.
# Writes path=<binary> to the step's outputs.
set -eu
out="${GITHUB_OUTPUT:-/dev/stdout}"
action_root=$(cd "$(dirname "$0")/.." && pwd)

if bin=$(command -v cipack 2>/dev/null); then
  echo "cipack: using $bin from PATH"
  echo "path=$bin" >> "$out"
  exit 0
fi

dest="${RUNNER_TEMP:-/tmp}/cipack-bin"
mkdir -p "$dest"
version="${CIPACK_VERSION:-}"
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch=unknown ;;
esac

if expr "$version" : 'v[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*$' >/dev/null && command -v curl >/dev/null 2>&1; then
  base="${CIPACK_RELEASE_BASE:-https://github.com/cipack/cipack/releases/download}/$version"
  asset="cipack_linux_$arch"
  if curl -fsSL --retry 3 -o "$dest/$asset" "$base/$asset" && curl -fsSL --retry 3 -o "$dest/checksums.txt" "$base/checksums.txt"; then
    if (cd "$dest" && grep " $asset\$" checksums.txt | sha256sum -c -); then
      mv "$dest/$asset" "$dest/cipack"
      chmod +x "$dest/cipack"
      echo "cipack: installed release $version"
      echo "path=$dest/cipack" >> "$out"
      exit 0
    fi
    echo "::error title=cipack setup::checksum mismatch for $asset $version" >&2
    exit 1
  fi
  echo "cipack: release $version not downloadable, building from source"
fi

if command -v go >/dev/null 2>&1; then
  echo "cipack: building from $action_root"
  (cd "$action_root" && CGO_ENABLED=0 go build -trimpath -o "$dest/cipack" ./cmd/cipack)
  echo "path=$dest/cipack" >> "$out"
  exit 0
fi

echo "::error title=cipack setup::no cipack on PATH, no release asset for '$version', and no Go to build one: use a release tag (vX.Y.Z) of the action, or put cipack in the builder image" >&2
exit 1
