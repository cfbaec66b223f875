"""OCI image archives written and read without a container engine.

The local harness needs small images nobody can pull here (the pause image of a real node, a
stage image holding a locally built kubectl) and must check archives it is handed before
importing them. An OCI archive is a tar of an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/...``): one gzip layer, one config, one manifest is all these images need, so
this module writes them directly, byte for byte the same for the same input (sorted entries,
zero mtimes on generated files, gzip without a timestamp).

Each manifest in the index carries the image name twice: ``org.opencontainers.image.ref.name``
(what ``podman load`` names the image after) and ``io.containerd.image.name`` (what containerd's
``ctr images import``, and so ``kind load image-archive``, names it after).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
INDEX_MEDIA = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA = "application/vnd.oci.image.layer.v1.tar+gzip"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_CHUNK = 1 << 20


class OCIArchiveError(ValueError):
    """A file is not a usable OCI archive, or an image name is not a full reference."""


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The runtime part of an image config (what `podman inspect` shows under Config)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = (DEFAULT_PATH,)
    user: str = ""
    workdir: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ArchiveImage:
    """One image found in an OCI archive's index."""

    name: str
    manifest_digest: str
    config: dict[str, Any]


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def check_ref(ref: str) -> str:
    """``ref`` if it names a registry host and a tag (``localhost/pause:3.10``), else OCIArchiveError."""
    name, sep, tag = ref.rpartition(":")
    host = name.split("/", 1)[0]
    if not sep or "/" not in name or "/" in tag or not tag or not ("." in host or host == "localhost" or ":" in host):
        raise OCIArchiveError(f"image name {ref!r} is not a full reference like localhost/NAME:TAG")
    return ref


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _reset(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _walk_sorted(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted([*dirnames, *filenames]):
            yield base / name


def _write_layer_tar(tar: tarfile.TarFile, rootfs: Path) -> None:
    for path in _walk_sorted(rootfs):
        arcname = path.relative_to(rootfs).as_posix()
        info = tar.gettarinfo(str(path), arcname)
        if info is None:  # sockets: nothing an image can carry
            continue
        if info.isfile():
            with path.open("rb") as f:
                tar.addfile(info, f)
        else:
            tar.addfile(info)


def _single_file_layer(tar: tarfile.TarFile, binary: Path, in_image: str) -> None:
    parts = in_image.strip("/").split("/")
    for i in range(1, len(parts)):
        d = tarfile.TarInfo("/".join(parts[:i]))
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(_reset(d))
    info = _reset(tarfile.TarInfo("/".join(parts)))
    info.size, info.mode = binary.stat().st_size, 0o755
    with binary.open("rb") as f:
        tar.addfile(info, f)


def _config_json(config: ImageConfig, diff_id: str) -> dict[str, Any]:
    runtime: dict[str, Any] = {"Env": list(config.env)}
    if config.entrypoint:
        runtime["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        runtime["Cmd"] = list(config.cmd)
    if config.user:
        runtime["User"] = config.user
    if config.workdir:
        runtime["WorkingDir"] = config.workdir
    if config.labels:
        runtime["Labels"] = dict(sorted(config.labels.items()))
    return {
        "created": "1970-01-01T00:00:00Z",
        "architecture": _arch(),
        "os": "linux",
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "e2e.oci"}],
    }


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _reset(tarfile.TarInfo(name))
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _blob(data: bytes) -> tuple[str, bytes]:
    return hashlib.sha256(data).hexdigest(), data


def _write(dest: Path, ref: str, config: ImageConfig, fill: Any) -> Path:
    check_ref(ref)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".oci-") as scratch:
        raw, gz = Path(scratch) / "layer.tar", Path(scratch) / "layer.tar.gz"
        with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as tar:
            fill(tar)
        diff_id = _sha256_file(raw)
        with raw.open("rb") as src, gz.open("wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as z:
            shutil.copyfileobj(src, z, _CHUNK)
        layer_digest = _sha256_file(gz)
        cfg_digest, cfg = _blob(json.dumps(_config_json(config, diff_id), sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA,
            "config": {"mediaType": CONFIG_MEDIA, "digest": f"sha256:{cfg_digest}", "size": len(cfg)},
            "layers": [{"mediaType": LAYER_MEDIA, "digest": f"sha256:{layer_digest}", "size": gz.stat().st_size}],
        }
        man_digest, man = _blob(json.dumps(manifest, sort_keys=True).encode())
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA,
            "manifests": [
                {
                    "mediaType": MANIFEST_MEDIA,
                    "digest": f"sha256:{man_digest}",
                    "size": len(man),
                    "platform": {"architecture": _arch(), "os": "linux"},
                    "annotations": {REF_NAME: ref, CONTAINERD_NAME: ref},
                }
            ],
        }
        tmp = Path(scratch) / "image.tar"
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as out_tar:
            _add_bytes(out_tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            _add_bytes(out_tar, "index.json", json.dumps(index, sort_keys=True).encode())
            for digest, data in sorted([(cfg_digest, cfg), (man_digest, man)]):
                _add_bytes(out_tar, f"blobs/sha256/{digest}", data)
            out_tar.add(str(gz), f"blobs/sha256/{layer_digest}", filter=_reset)
        tmp.replace(dest)
    return dest


def archive_from_rootfs(rootfs: Path, ref: str, dest: Path, config: ImageConfig = ImageConfig()) -> Path:
    """Write ``dest``, an OCI archive of one image named ``ref`` whose only layer is ``rootfs``.

    Owners and modes are kept as they are on disk (build the tree as root for root-owned files).
    """
    if not rootfs.is_dir():
        raise OCIArchiveError(f"root filesystem {rootfs} is not a directory")
    return _write(dest, ref, config, lambda tar: _write_layer_tar(tar, rootfs))


def archive_from_binary(
    binary: Path, ref: str, dest: Path, *, path: str | None = None, config: ImageConfig | None = None
) -> Path:
    """Write ``dest``, an OCI archive of an image holding one (static) executable.

    The file lands at ``path`` (default ``/<name>``), owned by root, mode 0755; it is the
    entrypoint unless ``config`` says otherwise.
    """
    if not binary.is_file():
        raise OCIArchiveError(f"executable {binary} does not exist")
    in_image = path or f"/{binary.name}"
    cfg = config or ImageConfig(entrypoint=(in_image,))
    return _write(dest, ref, cfg, lambda tar: _single_file_layer(tar, binary, in_image))


def _member_json(tar: tarfile.TarFile, name: str, archive: Path) -> Any:
    try:
        member = tar.extractfile(name)
    except KeyError:
        member = None
    if member is None:
        raise OCIArchiveError(f"{archive} is not an OCI archive: it has no {name}")
    try:
        return json.load(member)
    except ValueError as exc:
        raise OCIArchiveError(f"{archive}: {name} is not JSON ({exc})") from exc


def read_archive(archive: Path) -> list[ArchiveImage]:
    """The images an OCI archive names, or OCIArchiveError saying why it is not one."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            images = _images(tar, archive)
    except tarfile.TarError as exc:
        raise OCIArchiveError(f"{archive} is not an OCI archive (not a tar file)") from exc
    except OSError as exc:
        raise OCIArchiveError(f"cannot read image archive {archive}: {exc.strerror or exc}") from exc
    if not images:
        raise OCIArchiveError(f"{archive}: index.json lists no image manifest")
    return images


def _images(tar: tarfile.TarFile, archive: Path) -> list[ArchiveImage]:
    layout = _member_json(tar, "oci-layout", archive)
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise OCIArchiveError(f"{archive}: oci-layout has no imageLayoutVersion")
    index = _member_json(tar, "index.json", archive)
    images = []
    for desc in index.get("manifests", []) if isinstance(index, dict) else []:
        notes = desc.get("annotations") or {}
        name = notes.get(CONTAINERD_NAME) or notes.get(REF_NAME) or ""
        digest = str(desc.get("digest", ""))
        manifest = _member_json(tar, f"blobs/{digest.replace(':', '/')}", archive)
        config_digest = str(manifest.get("config", {}).get("digest", ""))
        config = _member_json(tar, f"blobs/{config_digest.replace(':', '/')}", archive)
        images.append(ArchiveImage(name=name, manifest_digest=digest, config=config))
    return images


def name_images(archive: Path, ref: str) -> None:
    """Set both name annotations of every manifest in ``archive`` to ``ref`` (rewritten in place).

    ``podman save --format oci-archive`` writes only ``org.opencontainers.image.ref.name``;
    containerd needs ``io.containerd.image.name`` to import the image under its full name.
    """
    check_ref(ref)
    read_archive(archive)
    tmp = archive.with_name(archive.name + ".tmp")
    with tarfile.open(archive, "r") as src, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            if member.name.lstrip("./") == "index.json":
                fobj = src.extractfile(member)
                if fobj is None:
                    raise OCIArchiveError(f"{archive}: index.json is not a regular file")
                index = json.load(fobj)
                for desc in index.get("manifests", []):
                    desc.setdefault("annotations", {}).update({REF_NAME: ref, CONTAINERD_NAME: ref})
                data = json.dumps(index, sort_keys=True).encode()
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    tmp.replace(archive)
