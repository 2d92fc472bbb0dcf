#!/bin/sh
# Finds the cipack binary that matches this action, without Docker, and
# pull mode's trusted lifecycle next to it: the `lifecycle` and `launcher`
# built from the lifecycle module cipack pins (cipack runs the credential
# phases, analyze/restore/export, with them and checks they are that
# version; it looks for them in the directory of its own executable):
#   1. a cipack already on PATH (e.g. baked into the builder image); a
#      notice when no lifecycle and launcher are next to it (a build in the
#      builder image does not need them, pull mode does);
#   2. a release: the version asked for when it is vX.Y.Z, else the one the
#      action's own commit records in action/release-version (the release
#      workflow writes it into the commit the major tag, e.g. v1, points
#      at). The assets (cipack, lifecycle, launcher) are each verified
#      against the release's checksums file and kept in the runner's tool
#      cache;
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

if bin=$(command -v cipack 2>/dev/null); then
  echo "cipack: using $bin from PATH"
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
  cache="${RUNNER_TOOL_CACHE:-${RUNNER_TEMP:-/tmp}}/cipack/$version/$arch"
  # verified SUMS ASSET FILE: FILE's sha256 is the one SUMS (a
  # checksums.txt) has for ASSET, on exactly one line.
  verified() {
    want=$(sed -n "s/^\([0-9a-f]\{64\}\)  *\*\{0,1\}$2\$/\1/p" "$1" 2>/dev/null) || return 1
    [ -n "$want" ] && [ -f "$3" ] || return 1
    got=$(sha256sum < "$3") || return 1
    [ "${got%% *}" = "$want" ]
  }
  hit=yes
  for b in $bins; do
    [ -x "$cache/$b" ] && verified "$cache/checksums.txt" "${b}_linux_$arch" "$cache/$b" || hit=no
  done
  if [ "$hit" = yes ]; then
    installed "$cache" "release $version from the tool cache (cipack, lifecycle, launcher verified)"
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
  # Downloaded apart, verified, then moved in: the cache never holds an
  # unverified file under a name the cache check trusts.
  dl="$cache/.download-$$"
  rm -rf "$dl"
  mkdir -p "$dl"
  get "$dl/checksums.txt" "$base/checksums.txt" || { rm -rf "$dl"; fail "could not download $base/checksums.txt"; }
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
  mv -f "$dl/checksums.txt" "$cache/checksums.txt"
  rm -rf "$dl"
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
