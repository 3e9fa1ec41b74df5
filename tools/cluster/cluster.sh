#!/usr/bin/env bash
# `make cluster` / `make cluster-down`: a local control plane on loopback, kwok nodes.
#   tools/cluster/cluster.sh up      build the binaries if needed, start, print KUBECONFIG
#   tools/cluster/cluster.sh down    stop it
#   tools/cluster/cluster.sh status
# State, certificates, logs and the kubeconfig live in ./.data/cluster/ (CLUSTER_DIR).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${CLUSTER_DIR:-$root/.data/cluster}
py=$root/.venv/bin/python
[ -x "$py" ] || py=python3
cmd=${1:-up}
if [ "$cmd" = up ]; then
  "$here/build.sh" >/dev/null
fi
exec "$py" "$here/localcluster.py" "$cmd" --dir "$dir"
