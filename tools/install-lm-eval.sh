#!/usr/bin/env bash
# Install lm-evaluation-harness (the `lm-eval` template's harness) into its own virtualenv in
# the shared cache: vllmbench only reads its output JSON. The [api] extra talks to an
# OpenAI-compatible server and needs no torch. Prints the path of the `lm_eval` executable.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=cached-venv.sh
source "$here/cached-venv.sh"
cached_venv lm-eval "$LM_EVAL_VERSION" lm_eval "lm-eval[api]==$LM_EVAL_VERSION" --help
