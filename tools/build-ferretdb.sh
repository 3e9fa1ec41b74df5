#!/usr/bin/env bash
# Build FerretDB (v1 line, SQLite backend) from its Go module into the shared cache.
# A second run does nothing: the binary is keyed by version.
#
# `go install module@version` builds a binary that panics at start: FerretDB embeds
# build/version/version.txt, which its release process generates and the module zip
# leaves empty. So: download the module with the Go toolchain, copy it, write the
# version file, apply our patches, build it as the main module (dependencies come from the
# module proxy).
#
# Patches (tools/ferretdb-patches/*.patch, applied in name order): v1.24's SQLite backend
# declares its unique _id index as `_ferretdb_sjson->"_id"` but queries `->'$._id'`, an
# expression SQLite's planner cannot match to it, so every _id lookup, update and delete
# scanned the whole table (127 ms at 20,000 documents, 1.1 ms with the patch); the second
# hunk pushes `{_id: {$in: [...]}}` down to the same index. 0002 makes the resource tracking (a
# stack trace and a finalizer per document iterator, a leak check) a no-op outside debug builds:
# 18% of a find's CPU. docs/results.md has the figures.
# The binary's name carries a hash of the patches, so a changed patch builds anew.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${VLLMBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vllmbench}
patches=("$here"/ferretdb-patches/*.patch)
patch_id=$(cat "${patches[@]}" | sha256sum | cut -c1-8)
out="$cache/bin/ferretdb-$FERRETDB_VERSION-p$patch_id"
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
for p in "${patches[@]}"; do
  git -C "$tmp/src" apply --whitespace=nowarn "$p" || { echo "build-ferretdb: patch $(basename "$p") does not apply to FerretDB $FERRETDB_VERSION" >&2; exit 1; }
done
(cd "$tmp/src" && GOFLAGS="-trimpath -mod=mod" go build -ldflags="-s -w" -o "$tmp/ferretdb" ./cmd/ferretdb) >&2
mkdir -p "$cache/bin"
mv "$tmp/ferretdb" "$out"
echo "$out"
