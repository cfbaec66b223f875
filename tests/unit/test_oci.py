"""OCI archives written by e2e.oci: valid layouts, stable bytes, names for podman and containerd."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from e2e.oci import (
    CONTAINERD_NAME,
    REF_NAME,
    ImageConfig,
    OCIArchiveError,
    archive_from_binary,
    archive_from_rootfs,
    name_images,
    read_archive,
)


def _blobs(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            if f is not None:
                out[m.name] = f.read()
        return out


def _layer(archive: Path) -> tarfile.TarFile:
    files = _blobs(archive)
    index = json.loads(files["index.json"])
    manifest = json.loads(files["blobs/" + index["manifests"][0]["digest"].replace(":", "/")])
    layer = files["blobs/" + manifest["layers"][0]["digest"].replace(":", "/")]
    return tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer)))


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "pause"
    path.write_bytes(b"\x7fELF not really, but any file will do\n")
    return path


def test_binary_archive_is_a_valid_layout(program: Path, tmp_path: Path) -> None:
    """Every blob's name is its sha256, the config's diff_id is the uncompressed layer's, the file is at /pause."""
    archive = archive_from_binary(program, "localhost/pause:3.10", tmp_path / "pause.tar")
    files = _blobs(archive)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert name.rsplit("/", 1)[1] == hashlib.sha256(data).hexdigest()
    (img,) = read_archive(archive)
    assert img.name == "localhost/pause:3.10"
    assert img.config["config"]["Entrypoint"] == ["/pause"]
    manifest = json.loads(files["blobs/" + img.manifest_digest.replace(":", "/")])
    layer = files["blobs/" + manifest["layers"][0]["digest"].replace(":", "/")]
    assert img.config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()]
    member = _layer(archive).getmember("pause")
    assert (member.mode, member.uid, member.gid) == (0o755, 0, 0)


def test_same_input_gives_the_same_bytes(program: Path, tmp_path: Path) -> None:
    """Two writes of one input are byte-identical (no timestamps), so digests are stable."""
    a = archive_from_binary(program, "localhost/pause:3.10", tmp_path / "a.tar", path="/bin/pause")
    b = archive_from_binary(program, "localhost/pause:3.10", tmp_path / "b.tar", path="/bin/pause")
    assert a.read_bytes() == b.read_bytes()
    assert _layer(a).getnames() == ["bin", "bin/pause"]


def test_rootfs_archive_keeps_the_tree_and_config(tmp_path: Path) -> None:
    """A directory becomes one layer with its files, links and the given runtime config."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "motd").write_text("hello\n")
    (root / "motd").symlink_to("etc/motd")
    config = ImageConfig(entrypoint=("/bin/sh",), user="65532:65532", workdir="/tmp")
    archive = archive_from_rootfs(root, "localhost/tree:1", tmp_path / "tree.tar", config)
    layer = _layer(archive)
    assert sorted(layer.getnames()) == ["etc", "etc/motd", "motd"]
    assert layer.getmember("motd").linkname == "etc/motd"
    (img,) = read_archive(archive)
    assert img.config["config"]["User"] == "65532:65532"
    assert img.config["config"]["WorkingDir"] == "/tmp"


@pytest.mark.parametrize("ref", ["pause:3.10", "pause", "localhost/pause", "registry/pause:1"])
def test_names_must_be_full_references(program: Path, tmp_path: Path, ref: str) -> None:
    """A name without a registry host and a tag is refused before anything is written."""
    with pytest.raises(OCIArchiveError, match="not a full reference like localhost/NAME:TAG"):
        archive_from_binary(program, ref, tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()


def test_files_that_are_not_oci_archives_are_named(tmp_path: Path) -> None:
    """A text file, a tar without a layout, a missing file: each error says which and why."""
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(OCIArchiveError, match=r"notes.txt is not an OCI archive \(not a tar file\)"):
        read_archive(text)
    docker_like = tmp_path / "docker.tar"
    with tarfile.open(docker_like, "w") as tar:
        data = b"[]"
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(OCIArchiveError, match=r"docker\.tar is not an OCI archive: it has no oci-layout"):
        read_archive(docker_like)
    with pytest.raises(OCIArchiveError, match=r"cannot read image archive .*missing\.tar"):
        read_archive(tmp_path / "missing.tar")


def test_name_images_sets_both_annotations(program: Path, tmp_path: Path) -> None:
    """Renaming writes the podman and the containerd annotation, and the archive stays valid."""
    archive = archive_from_binary(program, "localhost/before:1", tmp_path / "x.tar")
    name_images(archive, "localhost/gitopsd:dev")
    index = json.loads(_blobs(archive)["index.json"])
    notes = index["manifests"][0]["annotations"]
    assert notes[REF_NAME] == notes[CONTAINERD_NAME] == "localhost/gitopsd:dev"
    assert [i.name for i in read_archive(archive)] == ["localhost/gitopsd:dev"]
