# One image for both programs: `gitopsd run ...` and `metrics-adapter ...` (the manifests set
# the command through `args`, so tini stays PID 1).
#
#   docker build -t registry.example.com/gitopsd:0.1.0 .
#
# Stages: `build` installs the distribution into a virtualenv (wheels only: no compiler is
# needed, and none reaches the final image); `kubectl` fetches a checksum-verified kubectl
# (which carries kustomize as `kubectl kustomize`); the final stage holds the virtualenv, git,
# openssh-client, tini and kubectl, and runs as an unprivileged user.

# The Python the test suite runs on.
ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm
# Kept equal to the Kubernetes version the e2e harness tests against (e2e/binaries.py).
ARG KUBECTL_VERSION=v1.33.13

FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gitopsd ./gitopsd
COPY metrics_adapter ./metrics_adapter
# Every dependency ships wheels for this platform, so nothing is compiled (the slim image has no
# compiler, and none is installed).
RUN python -m venv /opt/gitopsd \
 && /opt/gitopsd/bin/pip install . \
 && /opt/gitopsd/bin/pip uninstall --yes pip \
 && find /opt/gitopsd -name '__pycache__' -prune -exec rm -rf {} + \
 && /opt/gitopsd/bin/python -m compileall -q /opt/gitopsd/lib

FROM debian:${DEBIAN_RELEASE}-slim AS kubectl
ARG KUBECTL_VERSION
ARG TARGETARCH=amd64
RUN apt-get update \
 && apt-get install --yes --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN curl -fsSLo /kubectl "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl" \
 && curl -fsSLo /kubectl.sha256 "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl.sha256" \
 && echo "$(cat /kubectl.sha256)  /kubectl" | sha256sum --check --strict - \
 && chmod 0755 /kubectl

FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE}
# git + openssh-client: fetching sources (https and ssh); tini: PID 1, forwards SIGTERM to the
# daemon and reaps the git/ssh children a killed fetch leaves behind.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends git openssh-client tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python -m pip uninstall --yes pip setuptools wheel || true
COPY --from=kubectl /kubectl /usr/local/bin/kubectl
COPY --from=build /opt/gitopsd /opt/gitopsd
# The uid/gid the manifests run as (runAsUser: 65532); no home, no shell, no password.
RUN groupadd --system --gid 65532 gitopsd \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin gitopsd
ENV PATH=/opt/gitopsd/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081 6443
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["gitopsd", "run"]
