#!/usr/bin/env bash
# The e2e suite against a kind cluster (docs/kind.md):
#
#   scripts/kind-e2e.sh ipv4|ipv6|dual [--keep] [pytest args...]
#
# Creates the kind cluster of e2e/kind/<family>.yaml, builds the image from the Dockerfile and
# loads it into the nodes (where podman and mmdebstrap are installed: the OCI archive of
# `python -m e2e.image build`, by `kind load image-archive`), installs
# e2e/kind/kwok-equivalent.yaml, then runs scripts/test.sh with GITOPSD_E2E_KUBECONFIG and
# GITOPSD_E2E_IMAGE set. The cluster is deleted on exit
# (also on failure or Ctrl-C) unless --keep is given. Needs kind and a running container
# engine (docker, podman or nerdctl; KIND_EXPERIMENTAL_PROVIDER picks one as kind does).
#
# Environment: GITOPSD_E2E_IMAGE=IMAGE uses that image instead of building one (loaded into the
# nodes when the engine has it, else pulled by them); KIND_NODE_IMAGE=kindest/node:vX.Y.Z picks
# the node image; KIND_E2E_DIR=DIR keeps the kubeconfig there (default: a temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/kind-e2e.sh ipv4|ipv6|dual [--keep] [pytest args...]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
case "$1" in
  ipv4) config=e2e/kind/ipv4.yaml ;;
  ipv6) config=e2e/kind/ipv6.yaml ;;
  dual | dual-stack) config=e2e/kind/dual-stack.yaml ;;
  -h | --help) usage ;;
  *) echo "error: unknown IP family '$1' (expected ipv4, ipv6 or dual)" >&2; exit 2 ;;
esac
shift
keep=0
if [ "${1:-}" = "--keep" ]; then
  keep=1
  shift
fi

if ! command -v kind >/dev/null 2>&1; then
  echo "error: 'kind' is not on PATH; install it (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)" >&2
  exit 1
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "error: 'kubectl' is not on PATH" >&2
  exit 1
fi

# The engine kind will use: the one KIND_EXPERIMENTAL_PROVIDER names, else the first that
# answers. A client without a running daemon (docker with no dockerd) does not count.
engine=""
candidates=(docker podman nerdctl)
if [ -n "${KIND_EXPERIMENTAL_PROVIDER:-}" ]; then
  candidates=("$KIND_EXPERIMENTAL_PROVIDER")
fi
for candidate in "${candidates[@]}"; do
  if command -v "$candidate" >/dev/null 2>&1 && timeout 20 "$candidate" info >/dev/null 2>&1; then
    engine=$candidate
    break
  fi
done
if [ -z "$engine" ]; then
  echo "error: no container engine answers ('${candidates[*]}' info failed or not installed): kind runs its" \
    "nodes as containers and needs a running docker, podman or nerdctl" >&2
  exit 1
fi

name=$(sed -n 's/^name: *//p' "$config")
# kwok-equivalent.yaml uses MutatingAdmissionPolicy (alpha in 1.32-1.33): the configs switch on
# its feature gate and API version; refuse one that does not rather than fail after creating it.
if ! grep -qE '^  MutatingAdmissionPolicy: *true' "$config" \
  || ! grep -qE '^  admissionregistration\.k8s\.io/v1alpha1: *"?true"?' "$config"; then
  echo "error: $config does not switch on MutatingAdmissionPolicy (featureGates:) and" \
    "admissionregistration.k8s.io/v1alpha1 (runtimeConfig:), which e2e/kind/kwok-equivalent.yaml needs" >&2
  exit 1
fi
if kind get clusters 2>/dev/null | grep -qx "$name"; then
  echo "error: a kind cluster named '$name' exists already; delete it first: kind delete cluster --name $name" >&2
  exit 1
fi

workdir=${KIND_E2E_DIR:-}
own_workdir=0
if [ -z "$workdir" ]; then
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/gitopsd-kind.XXXXXX")
  own_workdir=1
fi
mkdir -p "$workdir"
kubeconfig="$workdir/kubeconfig"
created=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$created" = 1 ] && [ "$keep" = 0 ]; then
    kind delete cluster --name "$name" >&2 || true
  elif [ "$created" = 1 ]; then
    echo "kept: kind cluster $name; export KUBECONFIG=$kubeconfig" >&2
    echo "delete it with: kind delete cluster --name $name" >&2
  fi
  if [ "$own_workdir" = 1 ] && [ "$keep" = 0 ]; then
    rm -rf "$workdir"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The image: the one GITOPSD_E2E_IMAGE names; else the OCI archive `python -m e2e.image build`
# makes (localhost/gitopsd:dev, from Debian's packages, no registry needed) where podman and
# mmdebstrap are installed; else a build of the Dockerfile with the engine (public bases).
image=${GITOPSD_E2E_IMAGE:-}
archive=""
if [ -z "$image" ] && command -v podman >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1; then
  echo "[kind-e2e] building the image archive: python -m e2e.image build" >&2
  archive=$("${PYTHON:-.venv/bin/python}" -m e2e.image build | tail -n 1)
  image=localhost/gitopsd:dev
elif [ -z "$image" ]; then
  image="gitopsd:e2e-$(git rev-parse --short HEAD 2>/dev/null || echo local)"
  echo "[kind-e2e] building $image with $engine" >&2
  "$engine" build -t "$image" .
fi

echo "[kind-e2e] creating kind cluster $name from $config" >&2
node_image=()
if [ -n "${KIND_NODE_IMAGE:-}" ]; then
  node_image=(--image "$KIND_NODE_IMAGE")
fi
created=1
kind create cluster --config "$config" --kubeconfig "$kubeconfig" --wait 180s "${node_image[@]}"

if [ -n "$archive" ]; then
  echo "[kind-e2e] loading $archive ($image) into the nodes" >&2
  kind load image-archive "$archive" --name "$name"
elif "$engine" image inspect "$image" >/dev/null 2>&1; then
  echo "[kind-e2e] loading $image into the nodes" >&2
  if [ "$engine" = docker ]; then
    kind load docker-image "$image" --name "$name"
  else
    "$engine" save "$image" -o "$workdir/image.tar"
    kind load image-archive "$workdir/image.tar" --name "$name"
    rm -f "$workdir/image.tar"
  fi
fi

echo "[kind-e2e] installing e2e/kind/kwok-equivalent.yaml (image $image)" >&2
sed "s|\"IMAGE\"|\"$image\"|g" e2e/kind/kwok-equivalent.yaml \
  | kubectl --kubeconfig "$kubeconfig" apply --server-side -f -

# Admission policies take effect a moment after they are created: wait (bounded) until a
# server-side dry run of a pod comes back with the image replaced.
for _ in $(seq 1 60); do
  got=$(kubectl --kubeconfig "$kubeconfig" -n default run kind-e2e-probe --image=registry.invalid/probe:1 \
    --restart=Never --dry-run=server -o 'jsonpath={.spec.containers[0].image}' 2>/dev/null || true)
  [ "$got" = "$image" ] && break
  sleep 1
done
if [ "$got" != "$image" ]; then
  echo "error: the admission policies of e2e/kind/kwok-equivalent.yaml did not take effect within 60 s" \
    "(a test pod's image came back as '${got:-nothing}'); is MutatingAdmissionPolicy enabled in this node image?" >&2
  exit 1
fi

echo "[kind-e2e] running the suite against $name" >&2
set +e
GITOPSD_E2E_KUBECONFIG="$kubeconfig" GITOPSD_E2E_IMAGE="$image" scripts/test.sh "$@"
rc=$?
set -e
exit "$rc"
