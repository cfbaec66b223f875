# One image for both programs: `gitopsd run ...` and `metrics-adapter ...` (the manifests set
# the command through `args`, so tini stays PID 1).
#
#   docker build -t registry.example.com/gitopsd:0.1.0 .
#
# Stages: `build` installs the distribution into a virtualenv (wheels only: no compiler is
# needed, and none reaches the final image); `kubectl` and `helm` fetch checksum-verified
# binaries (kubectl carries kustomize as `kubectl kustomize`); the final stage holds the
# virtualenv, git, openssh-client, tini, kubectl and helm, and runs as an unprivileged user.

# Base images, pinned by digest: the tag is there for readers, the digest is what gets pulled,
# so a rebuild gets the same bases until someone moves the pin on purpose. The digests are the
# multi-arch index (one digest for amd64 and arm64). To update one, read the index digest of
# the tag and paste it here, e.g.
#   docker buildx imagetools inspect python:3.11-slim-bookworm    (the "Digest:" line)
#   skopeo inspect --format '{{.Digest}}' docker://docker.io/library/debian:bookworm-slim
# Another base (a mirror, one built locally) is a build argument:
#   docker build --build-arg PYTHON_IMAGE=registry.example.com/python:3.11-slim-bookworm .
# PYTHON_IMAGE: the Python the test suite runs on (3.11), on Debian bookworm, for both Python stages.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:528257d48c1da0dcecc2e725d1ae34498d60c965f1241e39cd6a85a8859bdf84
# DEBIAN_IMAGE: only fetches kubectl; nothing of it reaches the final image.
ARG DEBIAN_IMAGE=debian:bookworm-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251
# BUILD_IMAGE: the base of the stage that installs the distribution; only the virtualenv leaves
# it. The same Python by default; one that also holds pip settings (an index mirror, a proxy's
# CA) keeps them out of the image (`python -m e2e.image build` passes such a one).
ARG BUILD_IMAGE=${PYTHON_IMAGE}
# Kept equal to the Kubernetes version the e2e harness tests against (e2e/binaries.py).
ARG KUBECTL_VERSION=v1.33.13
# KUBECTL_IMAGE: where /kubectl comes from. The default is the download stage below; an image
# holding /kubectl replaces it where dl.k8s.io is out of reach (`python -m e2e.image build`
# passes one built from kubectl's Go module; the download stage is then skipped).
ARG KUBECTL_IMAGE=kubectl-download
# helm renders Environments that name a chart (docs/helm.md); e2e/binaries.py builds this version.
ARG HELM_VERSION=v4.3.2
# HELM_IMAGE: like KUBECTL_IMAGE, an image holding /helm instead of the get.helm.sh download.
ARG HELM_IMAGE=helm-download

FROM ${BUILD_IMAGE} AS build
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

# Downloads only: nothing of these stages but the verified binaries reaches the image.
FROM ${DEBIAN_IMAGE} AS fetch
RUN apt-get update \
 && apt-get install --yes --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

FROM fetch AS kubectl-download
ARG KUBECTL_VERSION
# Set by BuildKit and buildah for each platform of a multi-arch build. No default here: a default
# would win over the platform's value, and an arm64 image would get an amd64 kubectl. Builders
# that set nothing build for the machine they run on, which dpkg names the same way (amd64, arm64).
ARG TARGETARCH
RUN arch="${TARGETARCH:-$(dpkg --print-architecture)}" \
 && curl -fsSLo /kubectl "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${arch}/kubectl" \
 && curl -fsSLo /kubectl.sha256 "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${arch}/kubectl.sha256" \
 && echo "$(cat /kubectl.sha256)  /kubectl" | sha256sum --check --strict - \
 && chmod 0755 /kubectl

FROM fetch AS helm-download
ARG HELM_VERSION
ARG TARGETARCH
RUN arch="${TARGETARCH:-$(dpkg --print-architecture)}" \
 && curl -fsSLo /helm.tgz "https://get.helm.sh/helm-${HELM_VERSION}-linux-${arch}.tar.gz" \
 && curl -fsSLo /helm.tgz.sha256sum "https://get.helm.sh/helm-${HELM_VERSION}-linux-${arch}.tar.gz.sha256sum" \
 && echo "$(cut -d' ' -f1 /helm.tgz.sha256sum)  /helm.tgz" | sha256sum --check --strict - \
 && tar -xzf /helm.tgz -C / --strip-components=1 "linux-${arch}/helm" \
 && chmod 0755 /helm

FROM ${KUBECTL_IMAGE} AS kubectl
FROM ${HELM_IMAGE} AS helm

FROM ${PYTHON_IMAGE}
# git + openssh-client: fetching sources (https and ssh); tini: PID 1, forwards SIGTERM to the
# daemon and reaps the git/ssh children a killed fetch leaves behind.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends git openssh-client tini ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python -m pip uninstall --yes pip setuptools wheel || true
COPY --from=kubectl /kubectl /usr/local/bin/kubectl
COPY --from=helm /helm /usr/local/bin/helm
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
