"""Reading the files of one commit without a work tree, and the same interface over a directory.

``files(path)`` lists the directory with ``git ls-tree`` and reads every blob through one
``git cat-file --batch`` process, straight from the bare mirror: no checkout, nothing on disk.
``directory()`` is for tools that want real files (kustomize): the commit is exported once
with ``git archive`` into a directory shared by every caller of that commit. Exports are
bounded (least recently used first), but an export stays while any tree that handed it out is
alive, so a kustomize build never loses its files halfway.

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
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

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


class ExportCache:
    """Exported commits on disk, shared by callers, at most ``limit`` unpinned ones kept."""

    def __init__(self, root: Path, limit: int = 8) -> None:
        self.root = root
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Path] = OrderedDict()
        self._pins: dict[str, int] = {}
        self._making: dict[str, threading.Lock] = {}

    def acquire(self, commit: str, make: Callable[[Path], None]) -> Path:
        """The export of ``commit`` (made by ``make(dir)`` on first use), pinned until :meth:`release`."""
        with self._lock:
            self._pins[commit] = self._pins.get(commit, 0) + 1
            making = self._making.setdefault(commit, threading.Lock())
        try:
            with making:
                with self._lock:
                    if commit in self._entries:
                        self._entries.move_to_end(commit)
                        return self._entries[commit]
                self.root.mkdir(parents=True, exist_ok=True)
                tmp = self.root / f".{commit}.{uuid.uuid4().hex[:8]}"
                tmp.mkdir()
                try:
                    make(tmp)
                    final = self.root / commit
                    shutil.rmtree(final, ignore_errors=True)  # a leftover of an interrupted export
                    tmp.rename(final)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                with self._lock:
                    self._entries[commit] = final
                    doomed = self._evict_locked()
                _remove(doomed)
                return final
        except BaseException:
            self.release(commit)
            raise

    def release(self, commit: str) -> None:
        with self._lock:
            left = self._pins.get(commit, 0) - 1
            if left > 0:
                self._pins[commit] = left
            else:
                self._pins.pop(commit, None)
            doomed = self._evict_locked()
        _remove(doomed)

    def _evict_locked(self) -> list[Path]:
        doomed = []
        for commit in list(self._entries):
            if len(self._entries) <= self.limit:
                break
            if self._pins.get(commit):
                continue
            doomed.append(self._entries.pop(commit))
            self._making.pop(commit, None)
        return doomed

    def exported(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._pins.clear()
            self._making.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


class GitTree:
    """The files of one commit in a bare mirror (implements ``model.Tree``)."""

    def __init__(
        self, mirror: Path, commit: str, runner: GitRunner, exports: ExportCache, tmp_root: Path, label: str
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
            listing = self._runner.run_sync(["ls-tree", "-r", "-z", "--end-of-options", treeish], cwd=self.mirror)
        except GitFailed as exc:
            if "not a tree object" in exc.stderr:
                raise errors.PathNotFound(f"path {rel!r} in {self._label} is a file, not a directory") from None
            if "Not a valid object name" in exc.stderr or "not a valid" in exc.stderr.lower():
                raise errors.PathNotFound(f"path {rel!r} not found in {self._label}") from None
            raise errors.SourceError(f"reading {rel or '/'} in {self._label} failed: {exc.stderr.strip()}") from None
        blobs: dict[str, str] = {}  # repository path -> blob id
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, name = entry.partition(b"\t")
            mode, kind, sha = meta.decode().split()
            if kind != "blob" or mode == _SYMLINK_MODE:
                continue
            name_text = name.decode("utf-8", errors="surrogateescape")
            blobs[f"{rel}/{name_text}" if rel else name_text] = sha
        return self._read_blobs(blobs)

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
                self._directory = self._exports.acquire(self.commit, self._export)
                # The export stays while this tree lives; release it when the tree is collected.
                weakref.finalize(self, self._exports.release, self.commit)
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
                found[full.relative_to(self.root).as_posix()] = full.read_bytes()
        return found

    def directory(self) -> Path:
        return self.root

    def __repr__(self) -> str:
        return f"LocalTree({self.root})"
