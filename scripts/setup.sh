#!/usr/bin/env bash
# Everything the tests and the demo need on a fresh machine, idempotent and quick when warm:
# Debian packages for the real services, a venv with the project, and the control-plane
# binaries and actionlint built from their Go modules (cached in ~/.cache/gitopsd, keyed by version).
set -euo pipefail
cd "$(dirname "$0")/.."

# nginx + fcgiwrap serve git http-backend and openssh-server runs sshd for the Git source tests;
# spawn-fcgi satisfies fcgiwrap's "systemd | spawn-fcgi" dependency without pulling in systemd.
# The shellcheck package: actionlint (built below) checks the workflows' `run:` scripts with it.
# podman (+ buildah, runc) and mmdebstrap build the container image here (python -m e2e.image build).
DEB_PACKAGES=(prometheus redis-server rabbitmq-server nginx fcgiwrap spawn-fcgi openssh-server shellcheck
  podman buildah runc mmdebstrap)
# The real node (e2e/realnode/, `python -m e2e.cluster up --real-node`): runtime, CNI plugins, kube-proxy's tools.
DEB_PACKAGES+=(containerd containernetworking-plugins iptables conntrack)

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "[setup] installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  # The packages' own services are not used (tests start private instances), so keep their
  # maintainer scripts from starting daemons where there is no init system.
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo_cmd[@]}" chmod +x /usr/sbin/policy-rc.d
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  "${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[setup] installing the project into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

echo "[setup] control-plane binaries and actionlint"
.venv/bin/python -m e2e.binaries
