#!/bin/sh
# Finds the cipack binary that matches this action, without Docker, and
# pull mode's trusted lifecycle next to it: the `lifecycle` and `launcher`
# built from the lifecycle module cipack pins (cipack runs the credential
# phases, analyze/restore/export, with them and checks they are that
# version; it looks for them in the directory of its own executable):
#   1. a cipack already on PATH (e.g. baked into the builder image): when a
#      release is pinned, only if it is that release's binary, its sha256
#      checked against the release's checksums.txt (printing the version
#      proves nothing: any script can); else it is replaced by the verified
#      download. With no release pinned there is nothing to check it
#      against, and it is used as it is. A notice when no lifecycle and
#      launcher are next to it (a build in the builder image does not need
#      them, pull mode does);
#   2. a release: the version asked for when it is vX.Y.Z, else the one the
#      action's own commit records in action/release-version (`make
#      release-prep` writes it into the release commit, which vX.Y.Z and
#      the major tag, e.g. v1, both point at). Downloaded over https only
#      (redirects too); the assets (cipack, lifecycle, launcher) are each
#      verified against the release's checksums.txt, whose keyless cosign
#      signature is verified too when cosign is on PATH; kept in the
#      runner's tool cache, and a cache hit is checked against checksums.txt
#      fetched again from the release;
#   3. else (an untagged ref): built from the action's own source, where Go
#      is present (the lifecycle and launcher from the version its go.mod
#      pins).
# Writes path=<binary> to the step's outputs.
set -eu
out="${GITHUB_OUTPUT:-/dev/stdout}"
action_root=$(cd "$(dirname "$0")/.." && pwd)
fail() {
  echo "::error title=cipack setup::$1" >&2
  exit 1
}
# The binaries a release ships per architecture, installed under these names.
bins="cipack lifecycle launcher"
# installed DIR HOW: says what is in DIR.
installed() {
  echo "cipack: $2"
  echo "cipack:   $1/cipack"
  echo "cipack:   $1/lifecycle, $1/launcher (pull mode's trusted lifecycle)"
}

is_release() { expr "$1" : 'v[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*$' >/dev/null; }
version="${CIPACK_VERSION:-}"
if ! is_release "$version" && [ -f "$action_root/action/release-version" ]; then
  recorded=$(tr -d ' \n' < "$action_root/action/release-version")
  is_release "$recorded" || fail "action/release-version holds '$recorded', not a release version vX.Y.Z"
  echo "cipack: ref '$version' is release $recorded"
  version=$recorded
fi
# A cipack on PATH is used when no release is pinned (the version input or
# action/release-version). With one pinned, it is used only when its bytes
# are that release's (checked below, once checksums.txt is fetched): the
# pinned, verified release wins.
bin=$(command -v cipack 2>/dev/null) || bin=
onpath=
[ -z "$bin" ] || onpath=$("$bin" --version 2>/dev/null | head -n 1) || onpath=
# use_path HOW: the step uses the cipack on PATH, HOW said in the log.
use_path() {
  echo "cipack: using $bin from PATH ($1)"
  # cipack looks next to its executable with symlinks resolved.
  real=$(readlink -f "$bin" 2>/dev/null) || real=$bin
  lcdir=${CIPACK_LIFECYCLE_DIR:-$(dirname "$real")}
  if [ -x "$lcdir/lifecycle" ] && [ -x "$lcdir/launcher" ]; then
    echo "cipack: pull mode's trusted lifecycle: $lcdir/lifecycle, $lcdir/launcher"
  else
    echo "::notice title=cipack setup::no lifecycle and launcher in $lcdir (next to $real): fine for a build inside the builder image, but pull mode (builder input on a plain runner) then needs --lifecycle-dir (CIPACK_LIFECYCLE_DIR) naming the lifecycle and launcher built from the version cipack pins, or --trust-builder"
  fi
  echo "path=$bin" >> "$out"
  exit 0
}
if [ -n "$bin" ] && ! is_release "$version"; then
  use_path "no release is pinned to check it against"
fi

if [ -n "$bin" ] && [ "${onpath##* }" != "$version" ]; then
  echo "cipack: $bin on PATH is '${onpath:-of unknown version}', not the pinned release $version: installing $version"
fi
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) arch=unknown ;;
esac

if is_release "$version"; then
  cache="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/cipack/$version/$arch"
  # verified SUMS ASSET FILE: FILE's sha256 is the one SUMS (a
  # checksums.txt) has for ASSET, on exactly one line.
  verified() {
    want=$(sed -n "s/^\([0-9a-f]\{64\}\)  *\*\{0,1\}$2\$/\1/p" "$1" 2>/dev/null) || return 1
    [ -n "$want" ] && [ -f "$3" ] || return 1
    got=$(sha256sum < "$3") || return 1
    [ "${got%% *}" = "$want" ]
  }
  # Downloads over https only, redirects included.
  if command -v curl >/dev/null 2>&1; then
    get() { curl -fsSL --proto '=https' --proto-redir '=https' --retry 3 -o "$1" "$2"; }
  elif command -v wget >/dev/null 2>&1; then
    get() { wget -q --https-only -O "$1" "$2"; }
  else
    fail "cipack $version must be downloaded (or, for the $bin on PATH, its checksums.txt to verify it), but this image has neither curl nor wget: install one in the job (or the builder image)"
  fi
  base="${CIPACK_RELEASE_BASE:-https://github.com/cipack/cipack/releases/download}/$version"
  case "$base" in
    https://*) ;;
    *) fail "release downloads are https only, not $base" ;;
  esac
  # Downloaded apart, verified, then moved in: the cache never holds an
  # unverified file under a name the cache check trusts. The release's
  # checksums are fetched every time: a tool-cache hit is checked against
  # them, never against a copy kept beside the binaries.
  mkdir -p "$cache"
  dl="$cache/.download-$$"
  rm -rf "$dl"
  mkdir -p "$dl"
  get "$dl/checksums.txt" "$base/checksums.txt" || { rm -rf "$dl"; fail "could not download $base/checksums.txt"; }
  if command -v cosign >/dev/null 2>&1; then
    get "$dl/checksums.txt.sigstore.json" "$base/checksums.txt.sigstore.json" || { rm -rf "$dl"; fail "could not download $base/checksums.txt.sigstore.json"; }
    if ! cosign verify-blob --bundle "$dl/checksums.txt.sigstore.json" \
      --certificate-identity-regexp '^https://github.com/cipack/cipack/.github/workflows/release.yml@refs/tags/v' \
      --certificate-oidc-issuer https://token.actions.githubusercontent.com \
      "$dl/checksums.txt" >"$dl/cosign.log" 2>&1; then
      sed 's/^/cipack:   cosign: /' "$dl/cosign.log" | sed 's/::/: :/g'
      rm -rf "$dl"
      fail "the signature of checksums.txt for $version does not verify (cosign verify-blob): refusing the release"
    fi
    checked="checksums.txt signed by the cipack release workflow (cosign verify-blob), each binary against it"
  else
    checked="checksums only: each binary against checksums.txt, downloaded over https from the release (no cosign on PATH to verify its signature)"
  fi
  # The cipack on PATH that says it is the pinned release is used only if
  # it is: its sha256 is the release's for this architecture.
  if [ -n "$bin" ] && [ "${onpath##* }" = "$version" ]; then
    if verified "$dl/checksums.txt" "cipack_linux_$arch" "$bin"; then
      rm -rf "$dl"
      echo "cipack: checked: $checked"
      use_path "release $version: its sha256 is the release's cipack_linux_$arch"
    fi
    echo "::warning title=cipack setup::$bin on PATH says it is $version, but its sha256 is not the release's cipack_linux_$arch: not using it; installing the verified release"
  fi
  hit=yes
  for b in $bins; do
    [ -x "$cache/$b" ] && verified "$dl/checksums.txt" "${b}_linux_$arch" "$cache/$b" || hit=no
  done
  if [ "$hit" = yes ]; then
    rm -rf "$dl"
    installed "$cache" "release $version from the tool cache (cipack, lifecycle, launcher verified against the release's checksums)"
    echo "cipack: checked: $checked"
    echo "path=$cache/cipack" >> "$out"
    exit 0
  fi
  for b in $bins; do
    asset="${b}_linux_$arch"
    get "$dl/$asset" "$base/$asset" || { rm -rf "$dl"; fail "could not download $base/$asset"; }
    if ! verified "$dl/checksums.txt" "$asset" "$dl/$asset"; then
      rm -rf "$dl"
      fail "checksum mismatch for $asset $version: refusing it"
    fi
  done
  for b in $bins; do
    chmod +x "$dl/${b}_linux_$arch"
    mv -f "$dl/${b}_linux_$arch" "$cache/$b"
  done
  rm -f "$cache/checksums.txt"
  rm -rf "$dl"
  echo "cipack: checked: $checked"
  installed "$cache" "installed release $version (verified)"
  echo "path=$cache/cipack" >> "$out"
  exit 0
fi

if command -v go >/dev/null 2>&1; then
  dest="${RUNNER_TEMP:-/tmp}/cipack-bin"
  mkdir -p "$dest"
  echo "cipack: building from $action_root"
  (cd "$action_root" && CGO_ENABLED=0 go build -trimpath -o "$dest/cipack" ./cmd/cipack) ||
    fail "could not build cipack from $action_root"
  # The lifecycle and launcher as `make build` makes them: from the module
  # version the action's go.mod pins, which cipack checks.
  for b in lifecycle launcher; do
    (cd "$action_root" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$dest/$b" "github.com/buildpacks/lifecycle/cmd/$b") ||
      fail "could not build the $b from the lifecycle module $action_root/go.mod pins"
  done
  installed "$dest" "built from $action_root"
  echo "path=$dest/cipack" >> "$out"
  exit 0
fi

fail "no cipack on PATH, no release for ref '$version', and no Go to build one: use the action at a release (vX.Y.Z or a major tag such as v1), or put cipack in the builder image"
