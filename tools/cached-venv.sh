# Sourced by tools/install-<tool>.sh: one tool installed into a virtualenv of its own in the
# shared cache, never into the project's venv (vllmbench talks to these tools over HTTP or
# reads their output, and must not import them). Keyed by version, so a second run does
# nothing. Prints the path of the tool's executable.
#
#   cached_venv <name> <version> <executable> <pip requirement> [check arguments...]
cached_venv() {
  local name=$1 version=$2 exe=$3 requirement=$4
  shift 4
  local cache=${VLLMBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vllmbench}
  local venv="$cache/$name-$version"
  if [ -x "$venv/bin/$exe" ] && [ -f "$venv/.ready" ]; then
    echo "$venv/bin/$exe"
    return 0
  fi
  local python=${PYTHON:-python3}
  echo "install-$name: installing $requirement into $venv (first time only, a few minutes)..." >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q "$requirement" >&2
  "$venv/bin/$exe" "$@" >/dev/null  # it runs: the install is whole
  touch "$venv/.ready"
  echo "$venv/bin/$exe"
}
