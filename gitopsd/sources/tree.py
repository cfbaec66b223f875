"""Reading the files of one commit without a work tree, and the same interface over a directory.

``files(path)`` lists the directory with ``git ls-tree`` and reads every blob through one
``git cat-file --batch`` process, straight from the bare mirror: no checkout, nothing on disk.
``directory()`` is for tools that want real files (kustomize): the commit is exported with
``git archive`` into a private directory of that tree alone (see :class:`Exports`: a
kustomization can name directories outside its root, so no other render's export may be
reachable), which stays while the tree is alive, so a kustomize build never loses its files
halfway, and goes with it.

Both trees skip symbolic links and submodules in ``files()``: manifests are regular files,
and following a link could read outside the repository. The export is what ``git archive``
gives: like a release tarball it honours ``export-ignore`` in the commit's ``.gitattributes``,
and links pointing outside the tree are left out.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path

from gitopsd.model import MAX_FILE_BYTES, UnreadFile
from gitopsd.sources import errors
from gitopsd.sources.gitcmd import GitFailed, GitRunner

_SYMLINK_MODE = "120000"


def clean_path(path: str) -> str:
    """A repository-relative directory without ``.``/empty parts; ``..`` may not leave the root."""
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise errors.PathNotFound(f"path {path!r} points outside the repository")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


class Exports:
    """Private exports: each tree that asks gets its own directory, removed when the tree goes.

    A kustomization may name any directory holding a kustomization as a base (``../../x``), even
    outside its own root, so no export may sit where a path from another render can guess it.
    Each export is ``<root>/<128 random bits>/tree``: its parent holds nothing else, and its
    siblings' names appear in no message. Nothing is shared between renders, not even of one
    commit (a render is kept in memory upstream, so a commit is exported once per Environment
    and change, not once per reconcile).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._live: set[Path] = set()

    def make(self, make: Callable[[Path], None]) -> Path:
        """A new private directory filled by ``make(dir)``; give it back with :meth:`release`."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        box = self.root / uuid.uuid4().hex
        box.mkdir(mode=0o700)
        dest = box / "tree"
        try:
            dest.mkdir()
            make(dest)
        except BaseException:
            shutil.rmtree(box, ignore_errors=True)
            raise
        with self._lock:
            self._live.add(box)
        return dest

    def release(self, dest: Path) -> None:
        box = dest.parent
        with self._lock:
            self._live.discard(box)
        shutil.rmtree(box, ignore_errors=True)

    def live(self) -> int:
        with self._lock:
            return len(self._live)

    def clear(self) -> None:
        with self._lock:
            self._live.clear()
        shutil.rmtree(self.root, ignore_errors=True)


class GitTree:
    """The files of one commit in a bare mirror (implements ``model.Tree``)."""

    def __init__(
        self, mirror: Path, commit: str, runner: GitRunner, exports: Exports, tmp_root: Path, label: str
    ) -> None:
        self.mirror = mirror
        self.commit = commit
        self._runner = runner
        self._exports = exports
        self._tmp_root = tmp_root
        self._label = label  # "<url> at <revision>", for messages
        self._lock = threading.Lock()
        self._directory: Path | None = None

    def files(self, path: str) -> dict[str, bytes]:
        rel = clean_path(path)
        treeish = f"{self.commit}:{rel}" if rel else f"{self.commit}^{{tree}}"
        try:
            listing = self._runner.run_sync(["ls-tree", "-r", "-l", "-z", "--end-of-options", treeish], cwd=self.mirror)
        except GitFailed as exc:
            if "not a tree object" in exc.stderr:
                raise errors.PathNotFound(f"path {rel!r} in {self._label} is a file, not a directory") from None
            if "Not a valid object name" in exc.stderr or "not a valid" in exc.stderr.lower():
                raise errors.PathNotFound(f"path {rel!r} not found in {self._label}") from None
            raise errors.SourceError(f"reading {rel or '/'} in {self._label} failed: {exc.stderr.strip()}") from None
        blobs: dict[str, str] = {}  # repository path -> blob id
        unread: dict[str, bytes] = {}  # too large to read (model.MAX_FILE_BYTES)
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, name = entry.partition(b"\t")
            mode, kind, sha, size = meta.decode().split()
            if kind != "blob" or mode == _SYMLINK_MODE:
                continue
            name_text = name.decode("utf-8", errors="surrogateescape")
            path = f"{rel}/{name_text}" if rel else name_text
            if int(size) > MAX_FILE_BYTES:
                unread[path] = UnreadFile(int(size))
            else:
                blobs[path] = sha
        return self._read_blobs(blobs) | unread

    def _read_blobs(self, blobs: dict[str, str]) -> dict[str, bytes]:
        if not blobs:
            return {}
        wanted = list(dict.fromkeys(blobs.values()))
        request = "".join(f"{sha}\n" for sha in wanted).encode()
        try:
            out = self._runner.run_sync(["cat-file", "--batch"], cwd=self.mirror, input=request)
        except GitFailed as exc:
            raise errors.SourceError(f"reading files of {self._label} failed: {exc.stderr.strip()}") from None
        contents: dict[str, bytes] = {}
        pos = 0
        for sha in wanted:
            header_end = out.index(b"\n", pos)
            header = out[pos:header_end].decode().split()
            if len(header) != 3 or header[0] != sha:
                raise errors.SourceError(f"reading blob {sha} in {self._label} failed: {' '.join(header)}")
            size = int(header[2])
            start = header_end + 1
            contents[sha] = out[start : start + size]
            pos = start + size + 1  # the newline after each object
        return {path: contents[sha] for path, sha in blobs.items()}

    def directory(self) -> Path:
        with self._lock:
            if self._directory is None:
                self._directory = self._exports.make(self._export)
                # The export stays while this tree lives; it goes when the tree is collected.
                weakref.finalize(self, self._exports.release, self._directory)
            return self._directory

    def _export(self, dest: Path) -> None:
        self._tmp_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self._tmp_root) as archive:
            try:
                self._runner.run_sync(["archive", "--format=tar", self.commit], cwd=self.mirror, stdout=archive)
            except GitFailed as exc:
                raise errors.SourceError(f"exporting {self._label} failed: {exc.stderr.strip()}") from None
            archive.seek(0)
            with tarfile.open(fileobj=archive, mode="r:") as tar:
                tar.extractall(dest, filter=_inside)  # noqa: S202 - every member passes the data filter

    def __repr__(self) -> str:
        return f"GitTree({self._label})"


def _inside(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's ``data`` filter, skipping (not failing on) a link that points outside the tree."""
    try:
        return tarfile.data_filter(member, dest)
    except tarfile.FilterError:
        return None


class LocalTree:
    """A directory on local disk as a ``model.Tree`` (``gitopsd render --path DIR``: no Git, no cluster)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def files(self, path: str) -> dict[str, bytes]:
        rel = clean_path(path)
        base = self.root / rel if rel else self.root
        if not base.is_dir():
            what = "is a file, not a directory" if base.exists() else "not found"
            raise errors.PathNotFound(f"path {rel or '.'!r} in {self.root} {what}")
        found: dict[str, bytes] = {}
        for current, dirs, names in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d != ".git" and not os.path.islink(os.path.join(current, d)))
            for name in sorted(names):
                full = Path(current, name)
                if full.is_symlink() or not full.is_file():
                    continue
                size = full.stat().st_size
                found[full.relative_to(self.root).as_posix()] = (
                    UnreadFile(size) if size > MAX_FILE_BYTES else full.read_bytes()
                )
        return found

    def directory(self) -> Path:
        return self.root

    def __repr__(self) -> str:
        return f"LocalTree({self.root})"
