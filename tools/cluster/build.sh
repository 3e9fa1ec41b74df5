#!/usr/bin/env bash
# Build the local control plane's binaries from their Go modules into the shared cache:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and
# kustomize; and the CustomResourceDefinitions the cluster installs (Knative, kwok),
# copied from those projects' Go modules.
# Versions come from tools/versions.env only. Every binary is keyed by its version,
# so a second run does nothing. Prints the folder that holds the binaries.
#
# Kubernetes' main module replaces its staging modules (k8s.io/api, ...) with folders
# of its own tree, so `go install k8s.io/kubernetes/cmd/...@v` refuses it. We generate a
# small tools module that requires k8s.io/kubernetes and maps every staging module to
# its published version (v1.37.2 -> v0.37.2), then build the commands from there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../versions.env
source "$here/../versions.env"
cache=${VLLMBENCH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vllmbench}
bin="$cache/bin"
mkdir -p "$bin"

log() { echo "cluster/build: $*" >&2; }
have() { [ -x "$bin/$1" ]; }

command -v go >/dev/null || { log "the Go toolchain is needed to build the test cluster's binaries"; exit 1; }
export GOFLAGS="-trimpath -buildvcs=false"
export CGO_ENABLED=0
strip_ldflags="-s -w"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

build_kubernetes() {
  local k8s=$KUBERNETES_VERSION
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=() c
  for c in "${want[@]}"; do have "$c-$k8s" || missing+=("$c"); done
  have "etcd-$ETCD_VERSION" || missing+=(etcd)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "building ${missing[*]} (Kubernetes $k8s, etcd $ETCD_VERSION) from Go modules; first time only, about 8 minutes on 2 cores..."
  local mod="$tmp/k8s-tools"
  mkdir -p "$mod"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@$k8s"; exit 1; }
  local staging=v0.${k8s#v1.}
  {
    echo "module vllmbench.local/cluster-tools"
    echo
    sed -n 's/^go \(.*\)$/go \1/p' "$gomod"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $k8s"
    echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo ")"
    echo
    echo "replace ("
    local m
    for m in $(sed -n 's/^[[:space:]]*\(k8s\.io\/[^ ]*\) => \.\/staging\/.*/\1/p' "$gomod"); do
      case $m in
        # Examples in Kubernetes' tree that are not published on the module proxy and
        # that no command imports: an empty module stands in so that the graph resolves.
        k8s.io/sample-*)
          mkdir -p "$mod/stub/$m"
          printf 'module %s\n\ngo 1.22\n' "$m" >"$mod/stub/$m/go.mod"
          echo "	$m => ./stub/$m"
          ;;
        *) echo "	$m => $m $staging" ;;
      esac
    done
    echo ")"
  } >"$mod/go.mod"
  # Blank imports keep the commands in the module graph for `go mod tidy`.
  cat >"$mod/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
  (cd "$mod" && go mod tidy -e >&2 2>"$tmp/tidy.log") || { cat "$tmp/tidy.log" >&2; exit 1; }
  local minor=${k8s#v1.}; minor=${minor%%.*}
  local x="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  mkdir -p "$tmp/out"
  local pkgs=()
  for c in "${missing[@]}"; do [ "$c" != etcd ] && pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  if [ ${#pkgs[@]} -gt 0 ]; then
    (cd "$mod" && go build -ldflags="$strip_ldflags$x" -o "$tmp/out/" "${pkgs[@]}")
    for c in "${missing[@]}"; do [ "$c" != etcd ] && mv "$tmp/out/$c" "$bin/$c-$k8s"; done
  fi
  if [[ " ${missing[*]} " == *" etcd "* ]]; then
    (cd "$mod" && go build -ldflags="$strip_ldflags" -o "$bin/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3)
  fi
}

# kwok and kustomize are installable as they are.
go_install() { # name module version
  have "$1-$3" && return 0
  log "building $1 $3 from its Go module..."
  GOBIN="$tmp/gobin" go install -ldflags="$strip_ldflags" "$2@$3" >&2
  mv "$tmp/gobin/$1" "$bin/$1-$3"
}

# Files from a module's tree at a version, through the module proxy (cached by Go).
module_dir() { go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'; }

# CRDs, never hand-written and never committed: Knative Serving's own
# config/core/300-resources, and Knative Eventing's release CRDs as shipped in
# knative.dev/operator (the module proxy refuses knative.dev/eventing itself).
# kwok's own CRDs for the per-pod Logs and Exec kinds.
copy_crds() {
  local data="$cache/cluster-data"
  local knative="$data/knative-serving-$KNATIVE_SERVING_VERSION-eventing-$KNATIVE_EVENTING_RELEASE"
  if [ ! -d "$knative" ]; then
    log "fetching Knative CRDs (serving $KNATIVE_SERVING_VERSION, eventing $KNATIVE_EVENTING_RELEASE via operator $KNATIVE_OPERATOR_VERSION)..."
    local serving operator
    serving=$(module_dir knative.dev/serving "$KNATIVE_SERVING_VERSION")
    operator=$(module_dir knative.dev/operator "$KNATIVE_OPERATOR_VERSION")
    mkdir -p "$tmp/knative"
    cp "$serving"/config/core/300-resources/*.yaml "$tmp/knative/"
    cp "$operator/cmd/operator/kodata/knative-eventing/$KNATIVE_EVENTING_RELEASE/1-eventing-crds.yaml" "$tmp/knative/eventing-crds.yaml"
    chmod -R u+w "$tmp/knative"
    mkdir -p "$data" && mv "$tmp/knative" "$knative"
  fi
  local kwok="$data/kwok-$KWOK_VERSION"
  if [ ! -d "$kwok" ]; then
    local src
    src=$(module_dir sigs.k8s.io/kwok "$KWOK_VERSION")
    mkdir -p "$tmp/kwok"
    cp "$src"/kustomize/crd/bases/*.yaml "$tmp/kwok/"
    chmod -R u+w "$tmp/kwok"
    mkdir -p "$data" && mv "$tmp/kwok" "$kwok"
  fi
}

start=$(date +%s)
build_kubernetes
go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
go_install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
copy_crds
elapsed=$(( $(date +%s) - start ))
[ "$elapsed" -gt 2 ] && log "built in ${elapsed}s"
echo "$bin"
