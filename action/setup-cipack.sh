#!/bin/sh
# Finds the cipack binary that matches this action, without Docker:
#   1. a cipack already on PATH (e.g. baked into the builder image);
#   2. a release: the version asked for when it is vX.Y.Z, else the one the
#      action's own commit records in action/release-version (the release
#      workflow writes it into the commit the major tag, e.g. v1, points
#      at). The asset is verified against the release's checksums file and
#      kept in the runner's tool cache;
#   3. else (an untagged ref): built from the action's own source, where Go
#      is present.
# Writes path=<binary> to the step's outputs.
set -eu
out="${GITHUB_OUTPUT:-/dev/stdout}"
action_root=$(cd "$(dirname "$0")/.." && pwd)
fail() {
  echo "::error title=cipack setup::$1" >&2
  exit 1
}

if bin=$(command -v cipack 2>/dev/null); then
  echo "cipack: using $bin from PATH"
  echo "path=$bin" >> "$out"
  exit 0
fi

is_release() { expr "$1" : 'v[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*$' >/dev/null; }
version="${CIPACK_VERSION:-}"
if ! is_release "$version" && [ -f "$action_root/action/release-version" ]; then
  recorded=$(tr -d ' \n' < "$action_root/action/release-version")
  is_release "$recorded" || fail "action/release-version holds '$recorded', not a release version vX.Y.Z"
  echo "cipack: ref '$version' is release $recorded"
  version=$recorded
fi
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch=unknown ;;
esac

if is_release "$version"; then
  asset="cipack_linux_$arch"
  cache="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/cipack/$version/$arch"
  if [ -x "$cache/cipack" ] && (cd "$cache" && grep " $asset\$" checksums.txt | sed "s/ $asset\$/ cipack/" | sha256sum -c - >/dev/null 2>&1); then
    echo "cipack: release $version from the tool cache"
    echo "path=$cache/cipack" >> "$out"
    exit 0
  fi
  if command -v curl >/dev/null 2>&1; then
    get() { curl -fsSL --retry 3 -o "$1" "$2"; }
  elif command -v wget >/dev/null 2>&1; then
    get() { wget -q -O "$1" "$2"; }
  else
    fail "cipack $version must be downloaded, but this image has neither curl nor wget: install one in the job (or the builder image), or put cipack on PATH"
  fi
  base="${CIPACK_RELEASE_BASE:-https://github.com/cipack/cipack/releases/download}/$version"
  mkdir -p "$cache"
  get "$cache/$asset" "$base/$asset" || fail "could not download $base/$asset"
  get "$cache/checksums.txt" "$base/checksums.txt" || fail "could not download $base/checksums.txt"
  if ! (cd "$cache" && grep " $asset\$" checksums.txt | sha256sum -c - >/dev/null); then
    rm -f "$cache/$asset"
    fail "checksum mismatch for $asset $version: refusing it"
  fi
  mv "$cache/$asset" "$cache/cipack"
  chmod +x "$cache/cipack"
  echo "cipack: installed release $version (verified)"
  echo "path=$cache/cipack" >> "$out"
  exit 0
fi

if command -v go >/dev/null 2>&1; then
  dest="${RUNNER_TEMP:-/tmp}/cipack-bin"
  mkdir -p "$dest"
  echo "cipack: building from $action_root"
  (cd "$action_root" && CGO_ENABLED=0 go build -trimpath -o "$dest/cipack" ./cmd/cipack)
  echo "path=$dest/cipack" >> "$out"
  exit 0
fi

fail "no cipack on PATH, no release for ref '$version', and no Go to build one: use the action at a release (vX.Y.Z or a major tag such as v1), or put cipack in the builder image"
