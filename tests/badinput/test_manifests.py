"""Bad input, manifest side: files under spec.source.path that are too big, too clever or not objects.

Every case goes through ``render`` (the daemon's entry point) and must fail with its own reason
and a message naming the file (and document or item) and the field or limit, and return nothing:
a render either yields every object or raises, so nothing of a bad render is ever applied.
tests/gitopsd/render/test_limits.py shows the same through a real daemon: Ready False, Stalled,
and no object created.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitopsd.model import UnreadFile
from gitopsd.render import (
    AliasExpansionTooLarge,
    FileTooLarge,
    InvalidManifest,
    KustomizeError,
    Limits,
    MalformedManifest,
    OfflineScopes,
    RenderError,
    RenderTooLarge,
    TooManyObjects,
    render,
)
from gitopsd.render.limits import MAX_FILE_BYTES, MiB
from gitopsd.sources.tree import LocalTree
from tests.gitopsd.render.trees import MemoryTree, options

OFFLINE = OfflineScopes()
CM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: b}}\n"
ALIAS_LIMIT = "(alias expansion limit: 1,000,000 values)"
ADDS = "brings the values that YAML aliases and merge keys add in this render to"


def laughs(levels: int, first: str = "x") -> list[str]:
    """Lines of a 'billion laughs' mapping: each level is nine aliases of the one before."""
    lines = [f"  l0: &l0 [{','.join([first] * 9)}]"]
    lines += [f"  l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    return lines


def list_bomb() -> str:
    """The issue's reproducer: every object stays small, Lists of aliased Lists multiply the objects."""

    def nine(name: str) -> str:
        return "[" + ",".join([f"*{name}"] * 9) + "]"

    lines = [
        "apiVersion: v1",
        "kind: List",
        "items:",
        "- &o {apiVersion: v1, kind: ConfigMap, metadata: {name: laugh}, data: {v: &a [x,x,x,x,x,x,x,x,x],"
        f" w: &b {nine('a')}, y: &c {nine('b')}, z: &d {nine('c')}}}}}",
        f"- &l1 {{apiVersion: v1, kind: List, items: {nine('o')}}}",
    ]
    lines += [f"- &l{n} {{apiVersion: v1, kind: List, items: {nine(f'l{n - 1}')}}}" for n in range(2, 7)]
    return "\n".join(lines) + "\n"


def plain_bomb(levels: int = 9) -> str:
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n" + "\n".join(laughs(levels)) + "\n"


def merge_chain(length: int) -> str:
    """Each mapping merges the one before (``<<``) and adds a key: copies grow with the square of the length."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: merged}", "data:", "  m0: &m0 {k0: v}"]
    lines += [f"  m{n}: &m{n} {{<<: *m{n - 1}, k{n}: v}}" for n in range(1, length)]
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: " + "[" * depth + "]" * depth + "\n"


def json_list(count: int) -> bytes:
    items = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{n}"}} for n in range(count)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}).encode()


def big_configmap(name: str, size: int) -> bytes:
    """A JSON ConfigMap of about ``size`` bytes (JSON: quick to parse, so the limit is what is tested)."""
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "x" * size}}
    ).encode()


# (files under deploy/, error class, reason, the exact message or, with "...", its start and a part)
CASES: list[tuple[str, dict[str, str | bytes], type[RenderError], str, str]] = [
    (
        "alias bomb in a List (the issue's reproducer)",
        {"deploy/bomb.yaml": list_bomb()},
        AliasExpansionTooLarge,
        "AliasExpansionTooLarge",
        f"deploy/bomb.yaml: {ADDS} 4,967,411,076 (aliases of aliases: a 'billion laughs' document?) {ALIAS_LIMIT}",
    ),
    (
        "plain alias bomb",
        {"deploy/bomb.yaml": plain_bomb()},
        AliasExpansionTooLarge,
        "AliasExpansionTooLarge",
        f"deploy/bomb.yaml: {ADDS} 490,328,964 (aliases of aliases: a 'billion laughs' document?) {ALIAS_LIMIT}",
    ),
    (
        "alias expansion over the limit only across two files of one render",
        {"deploy/a.yaml": plain_bomb(6), "deploy/b.yaml": plain_bomb(6).replace("name: lol", "name: lol2")},
        AliasExpansionTooLarge,
        "AliasExpansionTooLarge",
        f"deploy/b.yaml: {ADDS} 1,345,086 ...{ALIAS_LIMIT}",
    ),
    (
        "merge-key chain",
        {"deploy/merge.yaml": merge_chain(2000)},
        AliasExpansionTooLarge,
        "AliasExpansionTooLarge",
        f"deploy/merge.yaml: {ADDS} ...{ALIAS_LIMIT}",
    ),
    (
        "an alias inside the block it names",
        {"deploy/loop.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loop}\ndata: &d {self: *d}\n"},
        InvalidManifest,
        "InvalidManifest",
        "deploy/loop.yaml: holds a YAML alias inside the block it refers to (a cycle)",
    ),
    (
        "nesting 300 levels deep",
        {"deploy/deep.yaml": nested(300)},
        InvalidManifest,
        "InvalidManifest",
        "deploy/deep.yaml: is nested more than 200 levels deep",
    ),
    (
        "nesting made deep by aliases",
        {
            "deploy/deep.yaml": plain_bomb(3)
            + "".join(f"  d{n}: &d{n} [*{'l2' if n == 0 else f'd{n - 1}'}]\n" for n in range(250))
        },
        InvalidManifest,
        "InvalidManifest",
        "deploy/deep.yaml: is nested more than 200 levels deep",
    ),
    (
        "a file over 8 MiB",
        {"deploy/huge.yaml": b"# padding\n" * (MAX_FILE_BYTES // 10 + 1)},
        FileTooLarge,
        "FileTooLarge",
        "deploy/huge.yaml: is 8,388,610 bytes (limit per file: 8 MiB)",
    ),
    (
        "more than 10,000 objects",
        {"deploy/many.json": json_list(10_001)},
        TooManyObjects,
        "TooManyObjects",
        "deploy/many.json items[9999]: holds object number 10,001 of this render (object limit: 10,000)",
    ),
    (
        "more than 64 MiB of manifests in one render",
        {f"deploy/part{n}.json": big_configmap(f"part{n}", 7 * MiB) for n in range(10)},
        RenderTooLarge,
        "RenderTooLarge",
        "deploy/part9.json: brings this render to 70 MiB (rendered size limit: 64 MiB)",
    ),
    (
        "a large string repeated by aliases",
        {
            "deploy/wide.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: wide}\ndata:\n"
            f"  a: &s {'y' * MiB}\n  b: [{', '.join(['*s'] * 70)}]\n"
        },
        RenderTooLarge,
        "RenderTooLarge",
        "deploy/wide.yaml: brings this render to 72 MiB (rendered size limit: 64 MiB)",
    ),
    (
        "not UTF-8",
        {"deploy/latin1.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n".encode("latin-1")},
        MalformedManifest,
        "MalformedManifest",
        "deploy/latin1.yaml: not UTF-8 text (byte 51)",
    ),
    (
        "a key given twice",
        {"deploy/twice.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"},
        MalformedManifest,
        "MalformedManifest",
        "deploy/twice.yaml:5:3: invalid YAML: key 'name' is given twice (first on line 4)",
    ),
    (
        "a key given twice in JSON",
        {"deploy/twice.json": '{"apiVersion": "v1", "kind": "ConfigMap", "kind": "Secret"}'},
        MalformedManifest,
        "MalformedManifest",
        "deploy/twice.json: invalid JSON: key 'kind' is given twice",
    ),
    (
        "an integer of 5,000 digits",
        {"deploy/number.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: n}}\ndata: {{n: {'9' * 5000}}}\n"},
        MalformedManifest,
        "MalformedManifest",
        "deploy/number.yaml: invalid value: Exceeds the limit (4300 digits) for integer string conversion",
    ),
    (
        "a document that is a scalar",
        {"deploy/text.yaml": CM.format(name="a") + "---\njust some text\n"},
        InvalidManifest,
        "InvalidManifest",
        "deploy/text.yaml#2: is a str, not a Kubernetes object (apiVersion, kind, metadata)",
    ),
    (
        "List items that are not mappings",
        {
            "deploy/list.yaml": "apiVersion: v1\nkind: List\nitems:\n"
            "- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- 42\n"
        },
        InvalidManifest,
        "InvalidManifest",
        "deploy/list.yaml items[1]: is a int, not a Kubernetes object (apiVersion, kind, metadata)",
    ),
    (
        "no kind",
        {"deploy/nokind.yaml": "apiVersion: v1\nmetadata: {name: a}\n"},
        InvalidManifest,
        "InvalidManifest",
        "deploy/nokind.yaml: has no kind: every object needs apiVersion, kind and metadata.name",
    ),
    (
        "no apiVersion and no name",
        {"deploy/bare.yaml": "kind: ConfigMap\nmetadata: {labels: {a: b}}\n"},
        InvalidManifest,
        "InvalidManifest",
        "deploy/bare.yaml: has no apiVersion, metadata.name: every object needs apiVersion, kind and metadata.name",
    ),
    (
        "a name that is a number",
        {"deploy/number-name.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 42}\n"},
        InvalidManifest,
        "InvalidManifest",
        "deploy/number-name.yaml: has no metadata.name: every object needs apiVersion, kind and metadata.name",
    ),
    (
        "a name that would change the object's URL",
        {"deploy/path.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a/status}\n"},
        InvalidManifest,
        "InvalidManifest",
        "deploy/path.yaml: metadata.name 'a/status' may not be '.' or '..' nor contain '/' or '%'",
    ),
    (
        "a name that is '..'",
        {"deploy/dots.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '..'}\n"},
        InvalidManifest,
        "InvalidManifest",
        "deploy/dots.yaml: metadata.name '..' may not be '.' or '..' nor contain '/' or '%'",
    ),
    (
        "a namespace that is not a namespace name",
        {"deploy/ns.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: Kube_System}\n"},
        InvalidManifest,
        "InvalidManifest",
        "deploy/ns.yaml: metadata.namespace 'Kube_System' is not a namespace name (lowercase letters, digits and"
        " '-', starting and ending with a letter or digit, at most 63 characters)",
    ),
    (
        "one bad document among good ones in a file",
        {
            "deploy/app.yaml": CM.format(name="a")
            + "---\n"
            + CM.format(name="b")
            + "---\napiVersion: v1\nkind: Secret\n"
        },
        InvalidManifest,
        "InvalidManifest",
        "deploy/app.yaml#3: has no metadata.name: every object needs apiVersion, kind and metadata.name",
    ),
    (
        "one malformed document after good ones",
        {"deploy/app.yaml": CM.format(name="a") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: [b}\n"},
        MalformedManifest,
        "MalformedManifest",
        "deploy/app.yaml:8:...",
    ),
]


@pytest.fixture
def trees() -> Iterator[list[MemoryTree]]:
    made: list[MemoryTree] = []
    yield made
    for tree in made:
        tree.close()


@pytest.mark.parametrize(("files", "error", "reason", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_manifests_are_refused_by_file_and_limit(
    files: dict[str, str | bytes], error: type[RenderError], reason: str, message: str
) -> None:
    """Each bad input: its own error class and reason, a message naming the file and the limit or field."""
    good: dict[str, str | bytes] = {
        "deploy/good.yaml": CM.format(name="good")
    }  # rendered first (sorted): a bad file stops it all
    with pytest.raises(RenderError) as err:
        render(MemoryTree(good | files), options(), OFFLINE)
    assert type(err.value) is error
    assert err.value.reason == reason
    assert not err.value.transient  # Stalled: the same revision gives the same error
    start, dots, part = message.partition("...")
    assert str(err.value).startswith(start) if dots else str(err.value) == message, str(err.value)
    assert str(err.value).endswith(part), str(err.value)


def test_a_failed_render_leaves_the_next_one_its_whole_budget() -> None:
    """The budget is per render: a render just under the alias limit passes after one over it failed."""
    with pytest.raises(AliasExpansionTooLarge):
        render(MemoryTree({"deploy/a.yaml": plain_bomb()}), options(), OFFLINE)
    assert [m.ref.name for m in render(MemoryTree({"deploy/a.yaml": plain_bomb(6)}), options(), OFFLINE)] == ["lol"]


KUSTOMIZE_CASES = [
    (
        "a missing resource",
        {"deploy/kustomization.yaml": "resources: [gone.yaml]\n"},
        Limits(),
        KustomizeError,
        "KustomizeFailed",
        "deploy/kustomization.yaml: kustomize build failed: ",
        "gone.yaml",
    ),
    (
        "a remote base",
        {"deploy/kustomization.yaml": "resources: [https://example.com/x.yaml]\n"},
        Limits(),
        KustomizeError,
        "KustomizeFailed",
        "deploy/kustomization.yaml: kustomize build failed: ",
        "remote bases and URLs are not fetched",
    ),
    (
        "an unknown field",
        {"deploy/kustomization.yaml": "resourcez: [a.yaml]\n", "deploy/a.yaml": CM.format(name="a")},
        Limits(),
        KustomizeError,
        "KustomizeFailed",
        "deploy/kustomization.yaml: kustomize build failed: ",
        "resourcez",
    ),
    (
        "output over the rendered size limit (1 MiB here)",
        {
            "deploy/kustomization.yaml": "configMapGenerator:\n"
            + "".join(f"- {{name: g{n}, files: [big.txt]}}\n" for n in range(8)),
            "deploy/big.txt": "z" * (200 * 1024),
        },
        Limits(rendered_bytes=MiB),
        RenderTooLarge,
        "RenderTooLarge",
        "deploy/kustomization.yaml (kustomize output): kustomize build printed more than 1 MiB and was stopped",
        "(rendered size limit: 1 MiB)",
    ),
    (
        "output with more objects than the limit (3 here)",
        {
            "deploy/kustomization.yaml": "resources: [a.yaml]\n",
            "deploy/a.yaml": "---\n".join(CM.format(name=n) for n in "abcd"),
        },
        Limits(objects=3),
        TooManyObjects,
        "TooManyObjects",
        "deploy/kustomization.yaml (ConfigMap d): holds object number 4 of this render",
        "(object limit: 3)",
    ),
]


@pytest.mark.parametrize(
    ("files", "limits", "error", "reason", "start", "part"),
    [c[1:] for c in KUSTOMIZE_CASES],
    ids=[c[0] for c in KUSTOMIZE_CASES],
)
def test_bad_kustomizations_are_refused_by_kustomization_and_limit(
    trees: list[MemoryTree],
    files: dict[str, str | bytes],
    limits: Limits,
    error: type[RenderError],
    reason: str,
    start: str,
    part: str,
) -> None:
    """kustomize's failures and its output over a limit name the kustomization; nothing is returned."""
    tree = MemoryTree(files)
    trees.append(tree)
    with pytest.raises(RenderError) as err:
        render(tree, options(limits=limits), OFFLINE)
    assert type(err.value) is error and err.value.reason == reason
    assert str(err.value).startswith(start), str(err.value)
    assert part in str(err.value), str(err.value)


def test_a_file_over_the_limit_is_not_even_read_from_a_directory(tmp_path: Path) -> None:
    """A 1 GiB file (sparse: no disk used) is refused by its size; the tree never reads it."""
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy/good.yaml").write_text(CM.format(name="good"))
    with (tmp_path / "deploy/huge.yaml").open("wb") as huge:
        huge.truncate(1024 * MiB)
    files = LocalTree(tmp_path).files("deploy")
    assert isinstance(files["deploy/huge.yaml"], UnreadFile) and files["deploy/huge.yaml"] == b""
    with pytest.raises(FileTooLarge) as err:
        render(LocalTree(tmp_path), options(), OFFLINE)
    assert str(err.value) == "deploy/huge.yaml: is 1024 MiB (limit per file: 8 MiB)"
