#!/usr/bin/env bash
# Install the MLflow tracking server (tests and `make run`) into its own virtualenv in the
# shared cache, never into the project's venv: the functions talk to MLflow over HTTP only,
# and `import mlflow` must never be possible on their path. A second run does nothing:
# the venv is keyed by version. Prints the path of the `mlflow` executable.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${VLLMBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vllmbench}
venv="$cache/mlflow-$MLFLOW_VERSION"
if [ -x "$venv/bin/mlflow" ] && [ -f "$venv/.ready" ]; then
  echo "$venv/bin/mlflow"
  exit 0
fi
python=${PYTHON:-python3}
echo "install-mlflow: installing mlflow $MLFLOW_VERSION into $venv (first time only, a few minutes)..." >&2
rm -rf "$venv"
"$python" -m venv "$venv"
# mlflow-skinny cannot run `mlflow server`: the full package it is (pinned, from the registry).
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q "mlflow==$MLFLOW_VERSION" >&2
"$venv/bin/mlflow" --version >&2
touch "$venv/.ready"
echo "$venv/bin/mlflow"
