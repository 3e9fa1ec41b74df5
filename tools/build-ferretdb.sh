#!/usr/bin/env bash
# Build FerretDB (v1 line, SQLite backend) from its Go module into the shared cache.
# A second run does nothing: the binary is keyed by version.
#
# `go install module@version` builds a binary that panics at start: FerretDB embeds
# build/version/version.txt, which its release process generates and the module zip
# leaves empty. So: download the module with the Go toolchain, copy it, write the
# version file, build it as the main module (dependencies come from the module proxy).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${VLLMBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vllmbench}
out="$cache/bin/ferretdb-$FERRETDB_VERSION"
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "build-ferretdb: the Go toolchain is needed to build FerretDB (or set MONGO_URL to use an existing MongoDB)" >&2; exit 1; }
echo "build-ferretdb: building FerretDB $FERRETDB_VERSION from its Go module (first time only, about a minute)..." >&2
src=$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$src" ] || { echo "build-ferretdb: go mod download gave no source folder for FerretDB $FERRETDB_VERSION" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cp -r "$src" "$tmp/src"
chmod -R u+w "$tmp/src"
echo "$FERRETDB_VERSION" > "$tmp/src/build/version/version.txt"
(cd "$tmp/src" && GOFLAGS="-trimpath -mod=mod" go build -ldflags="-s -w" -o "$tmp/ferretdb" ./cmd/ferretdb) >&2
mkdir -p "$cache/bin"
mv "$tmp/ferretdb" "$out"
echo "$out"
