"""OCI image archives: write a one-layer image from a few files, and recognise an archive.

No registry is reachable here, so the real node's images (the pause image, the tests' HTTP
server) are made from static Go binaries and written as OCI image-layout tarballs, which
``ctr images import`` reads. The layer is built in Python with fixed timestamps and owners, so
the same binary always gives the same image digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
_MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"


class NotAnOCIArchive(ValueError):
    """The file given as an image archive is not an OCI image-layout tarball."""


@dataclass(frozen=True, slots=True)
class ImageFile:
    """One file of an image: its path inside the image, its bytes and its mode."""

    path: str
    data: bytes
    mode: int = 0o755


def _tar_info(name: str, size: int, mode: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.mtime = size, mode, kind, 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _layer(files: Sequence[ImageFile]) -> bytes:
    """A gzipped tar of ``files`` (and their parent directories), byte-for-byte reproducible."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(f.path.lstrip("/")).parent) for f in files} - {"."})
        for d in dirs:
            tar.addfile(_tar_info(d + "/", 0, 0o755, tarfile.DIRTYPE))
        for f in sorted(files, key=lambda f: f.path):
            tar.addfile(_tar_info(f.path.lstrip("/"), len(f.data), f.mode), io.BytesIO(f.data))
    return raw.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_archive(
    dest: Path,
    name: str,
    files: Sequence[ImageFile],
    *,
    entrypoint: Sequence[str],
    env: Mapping[str, str] | None = None,
    user: str = "65532:65532",
) -> Path:
    """Write ``dest``: an OCI archive of one linux/amd64 image called ``name`` (``repo:tag``)."""
    tar_bytes = _layer(files)
    layer = gzip.compress(tar_bytes, mtime=0)
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(entrypoint),
            "Env": [f"{k}={v}" for k, v in {"PATH": "/", **(env or {})}.items()],
            "User": user,
        },
        "rootfs": {"type": "layers", "diff_ids": [_digest(tar_bytes)]},
        "history": [{"created_by": "e2e.realnode.oci"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": _MEDIA_MANIFEST,
        "config": {"mediaType": _MEDIA_CONFIG, "digest": _digest(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": _MEDIA_LAYER, "digest": _digest(layer), "size": len(layer)}],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": _MEDIA_INDEX,
        "manifests": [
            {
                "mediaType": _MEDIA_MANIFEST,
                "digest": _digest(manifest_bytes),
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                # containerd names the image after the first; other tools read the second.
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as out:

        def add(path: str, data: bytes) -> None:
            out.addfile(_tar_info(path, len(data), 0o644), io.BytesIO(data))

        add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        add("index.json", json.dumps(index, sort_keys=True).encode())
        for blob in (config_bytes, manifest_bytes, layer):
            add(f"blobs/sha256/{_digest(blob).split(':', 1)[1]}", blob)
    tmp.replace(dest)
    return dest


def image_names(archive: Path) -> list[str]:
    """The image names an OCI archive carries; raise :class:`NotAnOCIArchive` if it is not one.

    Checked before anything is imported, so a wrong file gives one clear error instead of
    containerd's.
    """
    try:
        with tarfile.open(archive) as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}
            if "oci-layout" not in members or "index.json" not in members:
                raise NotAnOCIArchive(
                    f"{archive} is not an OCI image archive: it has no oci-layout and index.json at its top "
                    "(docker-save archives are not accepted; export with an OCI layout, e.g. "
                    "`podman save --format oci-archive`)"
                )
            index_file = tar.extractfile(members["index.json"])
            assert index_file is not None
            index = json.loads(index_file.read())
    except (tarfile.TarError, OSError) as exc:
        raise NotAnOCIArchive(f"{archive} is not an OCI image archive: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise NotAnOCIArchive(f"{archive}: index.json is not JSON: {exc}") from exc
    manifests = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(manifests, list) or not manifests:
        raise NotAnOCIArchive(f"{archive}: index.json lists no manifests")
    names = []
    for m in manifests:
        ann = m.get("annotations") or {} if isinstance(m, dict) else {}
        name = ann.get("io.containerd.image.name") or ann.get("org.opencontainers.image.ref.name")
        if name:
            names.append(str(name))
    return names
