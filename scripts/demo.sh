#!/usr/bin/env bash
# The demo. Until gitopsd and metrics_adapter can run it, it starts the local control plane
# (etcd, kube-apiserver, controller-manager, scheduler, kwok nodes) and tells you how to use it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
family=${IP_FAMILY:-ipv4}
dir=${DEMO_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gitopsd/demo-$family}
if [ -f "$dir/cluster.json" ]; then
  echo "a demo cluster is already running in $dir"
else
  rm -rf "$dir"
  .venv/bin/python -m e2e.cluster up --ip-family "$family" --dir "$dir"
fi
cat <<TXT

Try it:
  export KUBECONFIG=$dir/kubeconfig
  kubectl get nodes
  kubectl create deployment web --image=nginx --replicas=3 && kubectl rollout status deployment/web
  kubectl get pods -o wide          # Running and Ready on kwok nodes; no image is pulled

Stop it (removes $dir):
  .venv/bin/python -m e2e.cluster down --dir $dir
TXT
