#!/usr/bin/env bash
# Install lm-evaluation-harness (the `lm-eval` template's harness) into its own virtualenv in
# the shared cache, never into the project's venv: vllmbench only reads its output JSON.
# The [api] extra talks to an OpenAI-compatible server and needs no torch. A second run does
# nothing: the venv is keyed by version. Prints the path of the `lm_eval` executable.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache=${VLLMBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vllmbench}
venv="$cache/lm-eval-$LM_EVAL_VERSION"
if [ -x "$venv/bin/lm_eval" ] && [ -f "$venv/.ready" ]; then
  echo "$venv/bin/lm_eval"
  exit 0
fi
python=${PYTHON:-python3}
echo "install-lm-eval: installing lm-eval[api] $LM_EVAL_VERSION into $venv (first time only, a few minutes)..." >&2
rm -rf "$venv"
"$python" -m venv "$venv"
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q "lm-eval[api]==$LM_EVAL_VERSION" >&2
"$venv/bin/lm_eval" --help >/dev/null
touch "$venv/.ready"
echo "$venv/bin/lm_eval"
