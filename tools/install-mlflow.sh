#!/usr/bin/env bash
# Install the MLflow tracking server (tests and `make run`) into its own virtualenv in the
# shared cache: the functions talk to MLflow over HTTP only, and `import mlflow` must never
# be possible on their path. Prints the path of the `mlflow` executable.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=cached-venv.sh
source "$here/cached-venv.sh"
# mlflow-skinny cannot run `mlflow server`: the full package it is (pinned, from the registry).
cached_venv mlflow "$MLFLOW_VERSION" mlflow "mlflow==$MLFLOW_VERSION" --version
