#!/bin/sh
# Finds the cipack binary that matches this action, without Docker, and
# pull mode's trusted lifecycle next to it: the `lifecycle` and `launcher`
# built from the lifecycle module cipack pins (cipack runs the credential
# phases, analyze/restore/export, with them and checks they are that
# version; it looks for them in the directory of its own executable):
#   1. a cipack already on PATH (e.g. baked into the builder image): when a
#      release is pinned, only if it is that release's binary: it is never
#      run here (printing the version proves nothing, and running it hands
#      it the job), a copy of it is checked against the release's
#      checksums.txt and that copy is what the step uses; else the verified
#      release is installed. With no release pinned there is nothing to
#      check it against, and it is used as it is. A notice when no
#      lifecycle and launcher are next to it (a build in the builder image
#      does not need them, pull mode does);
#   2. a release: the version asked for when it is vX.Y.Z, else the one the
#      action's own commit records in action/release-version (`make
#      release-prep` writes it into the release commit, which vX.Y.Z and
#      the major tag, e.g. v1, both point at). Downloaded over https only
#      (redirects too); the assets (cipack, lifecycle, launcher) are each
#      verified against the release's checksums.txt, whose keyless cosign
#      signature is verified too when cosign is on PATH; kept in the
#      runner's tool cache, and a cache hit is copied out and the copies
#      checked against checksums.txt fetched again from the release. What
#      the step uses is always in a directory made for this run
#      ($RUNNER_TEMP/cipack-release.*): the bytes checked are the bytes run;
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
# A cipack on PATH is used as it is when no release is pinned (the version
# input or action/release-version): there is nothing to check it against.
# With one pinned, it is never run here (running it would hand it the
# job before it is checked): a copy of it is checked below, once
# checksums.txt is fetched, and the copy is what the step hands on.
bin=$(command -v cipack 2>/dev/null) || bin=
# lifecycle_notice DIR REAL: says whether DIR, where cipack (REAL) will
# look, holds pull mode's trusted lifecycle and launcher.
lifecycle_notice() {
  if [ -x "$1/lifecycle" ] && [ -x "$1/launcher" ]; then
    echo "cipack: pull mode's trusted lifecycle: $1/lifecycle, $1/launcher"
  else
    echo "::notice title=cipack setup::no lifecycle and launcher in $1 (next to $2): fine for a build inside the builder image, but pull mode (builder input on a plain runner) then needs --lifecycle-dir (CIPACK_LIFECYCLE_DIR) naming the lifecycle and launcher built from the version cipack pins, or --trust-builder"
  fi
}
if [ -n "$bin" ] && ! is_release "$version"; then
  echo "cipack: using $bin from PATH (no release is pinned to check it against)"
  # cipack looks next to its executable with symlinks resolved.
  real=$(readlink -f "$bin" 2>/dev/null) || real=$bin
  lifecycle_notice "${CIPACK_LIFECYCLE_DIR:-$(dirname "$real")}" "$real"
  echo "path=$bin" >> "$out"
  exit 0
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
  # The release's checksums are fetched every time: a tool-cache hit is
  # checked against them, never against a copy kept beside the binaries.
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
  # What the step hands on lives in a directory made fresh for this run
  # (mktemp: a new name, made by this user, writable by no one else), and
  # the bytes checked are the bytes later steps run: a file checked by
  # its path (on PATH, in the tool cache) could be swapped between the
  # check and the run, when the credentials are in the environment.
  stage=$(mktemp -d "${RUNNER_TEMP:-/tmp}/cipack-release.XXXXXXXX") || { rm -rf "$dl"; fail "could not make a directory in ${RUNNER_TEMP:-/tmp} for the verified binaries"; }
  chmod 755 "$stage"
  # take FILE BIN: copies FILE (a regular file: cp of a FIFO would wait)
  # to $stage/BIN and keeps the copy only if it is the release's
  # BIN_linux_ARCH.
  take() {
    rm -f "$stage/$2"
    if [ -f "$1" ] && cp "$1" "$stage/$2" 2>/dev/null && verified "$dl/checksums.txt" "${2}_linux_$arch" "$stage/$2"; then
      chmod 755 "$stage/$2"
      return 0
    fi
    rm -f "$stage/$2"
    return 1
  }
  # done_with: the step uses $stage/cipack.
  done_with() {
    rm -rf "$dl"
    echo "cipack: checked: $checked"
    echo "path=$stage/cipack" >> "$out"
    exit 0
  }
  # The cipack on PATH is used when its bytes are the release's: its copy
  # is, with the lifecycle and launcher next to it when they are the
  # release's too.
  if [ -n "$bin" ]; then
    if take "$bin" cipack; then
      echo "cipack: using $bin from PATH (release $version: its sha256 is the release's cipack_linux_$arch), as its copy $stage/cipack"
      real=$(readlink -f "$bin" 2>/dev/null) || real=$bin
      for b in lifecycle launcher; do take "$(dirname "$real")/$b" "$b" || true; done
      lifecycle_notice "${CIPACK_LIFECYCLE_DIR:-$stage}" "$real"
      done_with
    fi
    echo "::warning title=cipack setup::$bin on PATH is not release $version's cipack_linux_$arch (its sha256 differs): not using it; installing the verified release"
  fi
  hit=yes
  for b in $bins; do
    take "$cache/$b" "$b" || { hit=no; break; }
  done
  if [ "$hit" = yes ]; then
    installed "$stage" "release $version from the tool cache $cache (cipack, lifecycle, launcher copied and verified against the release's checksums)"
    done_with
  fi
  for b in $bins; do
    asset="${b}_linux_$arch"
    get "$stage/$b" "$base/$asset" || { rm -rf "$dl" "$stage"; fail "could not download $base/$asset"; }
    if ! verified "$dl/checksums.txt" "$asset" "$stage/$b"; then
      rm -rf "$dl" "$stage"
      fail "checksum mismatch for $asset $version: refusing it"
    fi
    chmod 755 "$stage/$b"
  done
  # Kept in the tool cache for the next job, each under a temporary name
  # renamed into place (a hit is verified again anyway; a directory or
  # link in the way would take the file into it, and goes first).
  for b in $bins; do
    if [ -d "$cache/$b" ] || [ -L "$cache/$b" ]; then rm -rf "$cache/$b"; fi
    cp "$stage/$b" "$dl/$b" && mv -f "$dl/$b" "$cache/$b" ||
      echo "::warning title=cipack setup::could not keep $b in the tool cache $cache: the next job downloads it again"
  done
  rm -f "$cache/checksums.txt"
  installed "$stage" "installed release $version (verified)"
  echo "cipack:   kept in the tool cache $cache for the next job"
  done_with
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
