"""Reading files into documents: YAML streams and JSON as kubectl reads them (render/documents.py)."""

from __future__ import annotations

import pytest

from gitopsd.render.documents import Document, file_documents, flatten_lists, is_manifest_file, parse
from gitopsd.render.errors import MalformedManifest


def test_multi_document_yaml_skips_empty_documents_but_counts_them() -> None:
    """Empty documents are dropped; the others keep the number a reader counts by ``---``."""
    text = b"a: 1\n---\n---\n# only a comment\n---\nb: 2\n"
    assert parse("f.yaml", text) == [(1, {"a": 1}), (4, {"b": 2})]


def test_origins_carry_the_document_number_only_in_multi_document_files() -> None:
    """One document: the path; several: ``path#N`` for each, N counted over the file."""
    assert [d.origin for d in file_documents("d/one.yaml", b"a: 1\n")] == ["d/one.yaml"]
    assert [d.origin for d in file_documents("d/two.yaml", b"a: 1\n---\nb: 2\n")] == ["d/two.yaml#1", "d/two.yaml#2"]
    assert [d.origin for d in file_documents("d/late.yaml", b"---\n---\nb: 2\n")] == ["d/late.yaml#2"]


def test_timestamps_stay_strings_and_binary_stays_base64_text() -> None:
    """Dates are strings (as in Kubernetes), !!binary keeps its base64 text: both serialise to JSON."""
    [(_, doc)] = parse(
        "f.yaml", b"date: 2026-01-01\nstamp: !!timestamp 2026-01-01T10:00:00Z\nbin: !!binary |\n  aGVs\n  bG8=\n"
    )
    assert doc == {"date": "2026-01-01", "stamp": "2026-01-01T10:00:00Z", "bin": "aGVsbG8="}


def test_yaml_1_1_scalars_and_merge_keys_behave_as_in_kubectl() -> None:
    """Unquoted yes is a boolean and 0777 octal (as kubectl reads them); merge keys may override."""
    [(_, doc)] = parse("f.yaml", b"base: &b {x: 1, y: 2}\nv: yes\nmode: 0777\nm:\n  <<: *b\n  y: 3\n")
    assert doc["v"] is True and doc["mode"] == 511 and doc["m"] == {"x": 1, "y": 3}


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (b"a: 1\nb: [1, 2\nc: 3\n", 3, "invalid YAML"),
        (b"kind: A\nmetadata:\n  name: x\n   bad: indent\n", 4, "invalid YAML"),
        (b"a: 1\nb: 2\na: 3\n", 3, "key 'a' is given twice (first on line 1)"),
        (b"ok: 1\n---\nx: : y\n", 3, "invalid YAML"),
        (b"\tkey: tab\n", 1, "invalid YAML"),
    ],
)
def test_malformed_yaml_names_file_and_line(text: bytes, line: int, words: str) -> None:
    """Bad YAML (syntax, indentation, a repeated key, a tab) is one line: FILE:LINE:COLUMN: problem."""
    with pytest.raises(MalformedManifest) as err:
        parse("deploy/web.yaml", text)
    assert err.value.line == line
    assert err.value.column is not None
    assert str(err.value).startswith(f"deploy/web.yaml:{line}:{err.value.column}: ")
    assert "\n" not in str(err.value) and "<unicode string>" not in str(err.value)
    assert words in str(err.value)
    assert err.value.reason == "MalformedManifest"


def test_json_files_are_one_document_with_line_numbers_on_errors() -> None:
    """A .json file is one object; a syntax error or a repeated key names the file (and line)."""
    assert parse("a.json", b'{"kind": "ConfigMap"}', json_file=True) == [(1, {"kind": "ConfigMap"})]
    assert parse("a.json", b"  \n", json_file=True) == []
    with pytest.raises(MalformedManifest, match=r"^a\.json:3:1: invalid JSON"):
        parse("a.json", b'{\n "a": 1,\n}', json_file=True)
    with pytest.raises(MalformedManifest, match="key 'a' is given twice"):
        parse("a.json", b'{"a": 1, "a": 2}', json_file=True)


def test_non_utf8_input_is_refused_with_the_byte() -> None:
    """Bytes that are not UTF-8 give a MalformedManifest naming the offset."""
    with pytest.raises(MalformedManifest, match=r"^bin\.yaml: not UTF-8 text \(byte 3\)"):
        parse("bin.yaml", b"a: \xff\xfe\n")


def test_utf8_bom_is_accepted() -> None:
    """A byte-order mark (some Windows editors write one) is not an error."""
    assert parse("bom.yaml", "\ufeffa: é\n".encode()) == [(1, {"a": "é"})]


def test_lists_are_flattened_with_item_origins() -> None:
    """``List`` and ``<Kind>List`` objects become their items, nested ones too."""
    doc = Document(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [{"kind": "A"}, {"kind": "ConfigMapList", "items": [{"kind": "B"}, {"kind": "C"}]}],
        },
        "f.yaml#2",
    )
    flat = list(flatten_lists(doc))
    assert [d.obj["kind"] for d in flat] == ["A", "B", "C"]
    assert [d.origin for d in flat] == ["f.yaml#2 items[0]", "f.yaml#2 items[1] items[0]", "f.yaml#2 items[1] items[1]"]
    plain = Document({"kind": "Deployment", "items": [1]}, "g.yaml")
    assert list(flatten_lists(plain)) == [plain]


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("web.yaml", True),
        ("sub/dir/web.yml", True),
        ("crd.JSON", True),
        ("README.md", False),
        ("kustomize.txt", False),
        (".gitlab-ci.yml", False),
        (".github/workflows/ci.yaml", False),
        ("apps/.hidden/x.yaml", False),
    ],
)
def test_which_files_are_manifests(path: str, wanted: bool) -> None:
    """YAML and JSON files are read; other files and hidden entries are not."""
    assert is_manifest_file(path) is wanted
