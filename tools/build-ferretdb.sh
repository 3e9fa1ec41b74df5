#!/usr/bin/env bash
# Build FerretDB (v1 line, SQLite backend) from its Go module into the shared cache.
# A second run does nothing: the binary is keyed by version.
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
command -v go >/dev/null || { echo "build-ferretdb: the Go toolchain is needed to build FerretDB (set MONGO_URL to use an existing MongoDB instead)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "build-ferretdb: building FerretDB $FERRETDB_VERSION from its Go module (first time only, a few minutes)..." >&2
GOBIN="$tmp" GOFLAGS=-trimpath go install "$FERRETDB_MODULE@$FERRETDB_VERSION" >&2
mkdir -p "$cache/bin"
mv "$tmp/ferretdb" "$out"
echo "$out"
