"""Bytes → documents: YAML streams and JSON files read the way kubectl reads them.

PyYAML's safe loader differs from Kubernetes' YAML reader in ways that would change what gets
applied, so the loader here is adjusted:

- timestamps stay strings (``2026-01-01`` is a date to PyYAML, a string to Kubernetes, and a
  ``date`` would not even serialise to JSON);
- ``!!binary`` stays its base64 text (the form a Secret's ``data`` wants), not ``bytes``;
- a key given twice in one mapping is an error with its line, as in ``kubectl apply``, rather
  than the last one silently winning;
- what aliases and merge keys (``<<``) expand to is counted against the render's ``Budget``
  (``limits``) while parsing, so a "billion laughs" document stops at the limit instead of
  at the end of memory.

libyaml (``CSafeLoader``) does the parsing when PyYAML was built with it: rendering thousands of
objects is dominated by YAML parsing, and the C parser is several times faster.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from gitopsd import yamlerrors
from gitopsd.model import UnreadFile
from gitopsd.render.errors import MalformedManifest
from gitopsd.render.limits import Budget

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc,valid-type]
    budget: Budget
    origin: str

    def flatten_mapping(self, node: MappingNode) -> None:
        """Merge keys copy entries (a chain of them copies quadratically): count the copies."""
        before = len(node.value)
        super().flatten_mapping(node)
        if len(node.value) > before:
            self.budget.merged(self.origin, len(node.value) - before)

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            for key_node, _ in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE:
                    if key_node.value in seen:
                        raise yaml.constructor.ConstructorError(
                            None,
                            None,
                            f"key {key_node.value!r} is given twice (first on line {seen[key_node.value] + 1})",
                            key_node.start_mark,
                        )
                    seen[key_node.value] = key_node.start_mark.line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep)
        return mapping

    def construct_binary_text(self, node: Node) -> str:
        return "".join(str(self.construct_scalar(node)).split())


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_constructor(_TIMESTAMP, yaml.SafeLoader.construct_yaml_str)
_Loader.add_constructor("tag:yaml.org,2002:binary", _Loader.construct_binary_text)


@dataclass(frozen=True, slots=True)
class Document:
    """One parsed document (any YAML value until checked) and where it came from."""

    obj: Any
    origin: str


def is_manifest_file(relative: str) -> bool:
    """A ``.yaml`` / ``.yml`` / ``.json`` file, not hidden and not inside a hidden directory.

    Hidden entries (``.github/workflows/*.yml``, ``.gitlab-ci.yml``, ``.pre-commit-config.yaml``)
    hold YAML that is not Kubernetes objects; every tool config a repository root carries is one.
    """
    if not relative.lower().endswith(MANIFEST_SUFFIXES):
        return False
    return not any(part.startswith(".") for part in relative.split("/"))


def file_documents(path: str, data: bytes, budget: Budget | None = None) -> list[Document]:
    """The non-empty documents of one file, with origin ``path``, or ``path#N`` for the N-th
    document (counting empty ones, as a reader counts ``---``) when the file holds more than one.

    The file's size is checked against the budget before anything is parsed; a file the tree did
    not read (``model.UnreadFile``: over ``model.MAX_FILE_BYTES``) is refused with its size.
    """
    budget = budget or Budget()
    if isinstance(data, UnreadFile):
        budget.unread_file(path, data.size)
    budget.read_file(path, len(data))
    docs = parse(path, data, json_file=path.lower().endswith(".json"), budget=budget)
    if len(docs) == 1 and docs[0][0] == 1:
        return [Document(docs[0][1], path)]
    return [Document(obj, f"{path}#{number}") for number, obj in docs]


def parse(
    origin: str, data: bytes | str, *, json_file: bool = False, budget: Budget | None = None
) -> list[tuple[int, Any]]:
    """``(document number, value)`` of each non-empty document (numbers count empty ones too).

    Each document of a YAML stream with anchors is measured against ``budget`` (a fresh one when
    None): alias expansion, size, nesting. The caller checks the size of ``data`` itself
    (``Budget.read_file`` / ``read_output``).
    """
    budget = budget or Budget()
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise MalformedManifest(origin, f"not UTF-8 text (byte {exc.start})") from None
    else:
        text = data
    try:
        if json_file:
            value = json.loads(text, object_pairs_hook=_json_object) if text.strip() else None
            return [] if value is None else [(1, value)]  # JSON has no aliases
        return _load_yaml(origin, text, budget)
    except yaml.YAMLError as exc:
        where = yamlerrors.position(exc)
        raise MalformedManifest(origin, f"invalid YAML: {yamlerrors.problem(exc)}", *(where or ())) from None
    except json.JSONDecodeError as exc:
        raise MalformedManifest(origin, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except _DuplicateJSONKey as exc:
        raise MalformedManifest(origin, f"invalid JSON: key {exc.key!r} is given twice") from None
    except RecursionError:
        raise MalformedManifest(origin, "nested too deeply") from None
    except ValueError as exc:  # from a constructor: an integer of more than 4300 digits
        problem = str(exc).partition(": value has")[0]  # not Python's advice on raising its limit
        raise MalformedManifest(origin, f"invalid value: {problem}") from None


def _load_yaml(origin: str, text: str, budget: Budget) -> list[tuple[int, Any]]:
    anchors = "&" in text  # no anchor, no alias (nor merge key): nothing to expand
    loader = _Loader(text)
    loader.budget, loader.origin = budget, origin
    docs = []
    try:
        number = 0
        while loader.check_data():
            number += 1
            doc = loader.get_data()
            if doc is not None:
                if anchors:
                    budget.measure(origin if number == 1 else f"{origin}#{number}", doc)
                docs.append((number, doc))
    finally:
        loader.dispose()
    return docs


def flatten_lists(doc: Document, budget: Budget | None = None) -> Iterator[Document]:
    """A ``List`` (or ``<Kind>List``) with ``items`` becomes its items, as kubectl does; each
    object yielded counts against ``budget``'s object limit."""
    obj = doc.obj
    if isinstance(obj, dict) and str(obj.get("kind", "")).endswith("List") and isinstance(obj.get("items"), list):
        for index, item in enumerate(obj["items"]):
            yield from flatten_lists(Document(item, f"{doc.origin} items[{index}]"), budget)
    else:
        if budget is not None:
            budget.count_object(doc.origin)
        yield doc


class _DuplicateJSONKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateJSONKey(key)
        result[key] = value
    return result
