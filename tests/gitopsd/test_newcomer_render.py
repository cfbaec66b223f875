"""Substitution only when asked, unknown spec fields, offline custom resources, one-line YAML errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitopsd import config, fieldcheck
from gitopsd.environment_fields import SPEC
from gitopsd.errors import SpecError
from gitopsd.render import OfflineScopes, UnknownKind, UnknownVariable, render
from gitopsd.spec import SubstituteFrom, parse_spec
from tests.gitopsd.render.trees import MemoryTree, options

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "gitopsd" / "crd.yaml"
SOURCE = {"url": "https://git.example.com/shop.git", "branch": "main"}

DASHBOARD = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: dashboards}
data:
  run.sh: 'echo "${HOME}" ${1} ${X:-default}'
  rule: 'sum(rate(${1}[2m]))'
"""


def _values(manifests: list[Any]) -> dict[str, str]:
    data: dict[str, str] = manifests[0].obj["data"]
    return data


# -- substitution only when asked --------------------------------------------------------------


def test_without_substitute_text_is_applied_as_written() -> None:
    """No spec.substitute: ${...} of any form (shell, templates, undefined names) reaches the cluster unchanged."""
    manifests = render(MemoryTree({"deploy/cm.yaml": DASHBOARD}), options(substitute=None), OfflineScopes())
    assert _values(manifests) == {"run.sh": 'echo "${HOME}" ${1} ${X:-default}', "rule": "sum(rate(${1}[2m]))"}


def test_with_substitute_the_same_text_is_refused_by_name() -> None:
    """With substitution on, the same ConfigMap is an error naming the file and the reference."""
    with pytest.raises(UnknownVariable, match=r"^deploy/cm\.yaml: unknown variable \$\{HOME\} in data\['run\.sh'\]"):
        render(MemoryTree({"deploy/cm.yaml": DASHBOARD}), options(substitute={}), OfflineScopes())


def test_empty_substitute_turns_on_the_builtins() -> None:
    """``substitute: {}`` substitutes the built-ins; absent, the built-in reference stays literal."""
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {env: '${GITOPSD_ENVIRONMENT}'}\n"
    tree = {"deploy/cm.yaml": cm}
    on = render(MemoryTree(tree), options(substitute={}), OfflineScopes())
    off = render(MemoryTree(tree), options(substitute=None), OfflineScopes())
    assert _values(on) == {"env": "dev"}
    assert _values(off) == {"env": "${GITOPSD_ENVIRONMENT}"}


def test_spec_turns_substitution_on_only_when_a_field_is_set() -> None:
    """spec.substitute absent → None (off); ``{}`` or substituteFrom → on."""
    assert parse_spec({"source": SOURCE}).substitute is None
    assert parse_spec({"source": SOURCE, "substitute": {}}).substitute == {}
    spec = parse_spec({"source": SOURCE, "substituteFrom": [{"kind": "Secret", "name": "vals", "optional": True}]})
    assert spec.substitute == {}
    assert spec.substitute_from == (SubstituteFrom("Secret", "vals", True),)


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({"x": 1}, "spec.substituteFrom", "must be a list"),
        ([{"kind": "Deployment", "name": "a"}], "spec.substituteFrom[0].kind", "must be ConfigMap or Secret"),
        ([{"kind": "ConfigMap"}], "spec.substituteFrom[0].name", "is required"),
        ([{"kind": "ConfigMap", "name": "a", "optional": "yes"}], "spec.substituteFrom[0].optional", "true or false"),
    ],
)
def test_bad_substitute_from_names_the_field(raw: Any, field: str, words: str) -> None:
    """Each bad substituteFrom entry is refused with its field named."""
    with pytest.raises(SpecError) as err:
        parse_spec({"source": SOURCE, "substituteFrom": raw})
    assert str(err.value).startswith(f"{field}: ") and words in str(err.value)


# -- unknown fields ----------------------------------------------------------------------------


def test_field_tree_is_generated_from_the_crd() -> None:
    """environment_fields.py is what the generator makes of the CRD (regenerate it when the CRD changes)."""
    crd = yaml.safe_load(CRD.read_text())
    expected = fieldcheck.module_text(fieldcheck.spec_tree(crd))
    actual = (ROOT / "gitopsd" / "environment_fields.py").read_text()
    regenerate = "python -m gitopsd.fieldcheck manifests/gitopsd/crd.yaml > gitopsd/environment_fields.py"
    assert actual == expected, f"run: {regenerate}"
    assert "substituteFrom" in SPEC  # type: ignore[operator]


@pytest.mark.parametrize(
    ("extra", "field", "hint"),
    [
        ({"prun": False}, "spec.prun", "did you mean 'prune'?"),
        ({"wait": {"timout": "1m"}}, "spec.wait.timout", "did you mean 'timeout'?"),
        ({"source": {**SOURCE, "secretref": {"name": "x"}}}, "spec.source.secretref", "did you mean 'secretRef'?"),
        ({"freeze": [{"cron": "0 18 * * FRI", "duration": "1h"}, {"strat": "x"}]}, "spec.freeze[1].strat", ""),
        ({"substituteFrom": [{"kind": "Secret", "name": "a", "optinal": True}]}, "spec.substituteFrom[0].optinal", ""),
    ],
)
def test_unknown_fields_are_refused_by_path(extra: dict[str, Any], field: str, hint: str) -> None:
    """A misspelt field anywhere in the spec is an error naming its full path, with a suggestion when close."""
    with pytest.raises(SpecError) as err:
        parse_spec({"source": SOURCE, **extra})
    assert str(err.value).startswith(f"{field}: unknown field")
    assert hint in str(err.value)


def test_map_fields_take_any_key() -> None:
    """Keys of a map field (substitute) are values, not field names: any is accepted."""
    assert parse_spec({"source": SOURCE, "substitute": {"ANY_NAME": "v"}}).substitute == {"ANY_NAME": "v"}


def test_config_file_refuses_a_typo_before_anything_is_written(tmp_path: Path) -> None:
    """`run --config` with a misspelt Environment field fails naming the file, document and field."""
    path = tmp_path / "gitopsd.yaml"
    env = {
        "apiVersion": "gitopsd.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "dev", "namespace": "apps"},
        "spec": {"source": SOURCE, "intervall": "1m"},
    }
    path.write_text(yaml.safe_dump(env))
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert str(err.value) == (
        f"--config {path} (document 1, Environment): spec.intervall: unknown field (did you mean 'interval'?)"
    )
    path.write_text(yaml.safe_dump({**env, "spec": {"source": SOURCE}, "stauts": {}}))
    with pytest.raises(config.ConfigError, match=r"\(document 1, Environment\): stauts: unknown field"):
        config.load(path)


ENV_DOC = (
    "apiVersion: gitopsd.dev/v1alpha1\nkind: Environment\nmetadata: {{name: {name}, namespace: ops{meta}}}\n"
    "spec:\n  source: {{url: 'https://git.example.com/x.git', branch: main}}\n  interval: 1m\n{extra}"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ENV_DOC.format(name="Dev/x", meta="", extra=""), "(document 1, Environment): metadata.name: 'Dev/x' is not"),
        (ENV_DOC.format(name="dev", meta=", lables: {a: b}", extra=""), "metadata.lables: unknown field"),
        (ENV_DOC.format(name="dev", meta="", extra="  interval: 2m\n"), ":7:3: invalid YAML: key 'interval'"),
        (ENV_DOC.format(name="dev", meta="", extra="") + "---\n" + ENV_DOC.format(name="dev", meta="", extra=""),
         "(document 2, Environment): Environment ops/dev is defined twice (documents 1 and 2)"),
        (b"kind: \xff\n", ": not UTF-8 text (byte 6)"),
    ],
)  # fmt: skip
def test_config_file_bad_documents_are_refused_by_name(tmp_path: Path, text: str | bytes, message: str) -> None:
    """Bad names, metadata typos, repeated keys, one Environment twice, non-UTF-8: one line naming where."""
    path = tmp_path / "gitopsd.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"--config {path}") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_config_yaml_error_is_one_line(tmp_path: Path) -> None:
    """A YAML error in the config file is FILE:LINE:COL: problem, one line, no '<unicode string>'."""
    path = tmp_path / "gitopsd.yaml"
    path.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert str(err.value).startswith(f"--config {path}:2:2: invalid YAML: ")
    assert "\n" not in str(err.value) and "<unicode string>" not in str(err.value)


# -- offline scopes ----------------------------------------------------------------------------


def test_offline_custom_resources_are_namespaced_unless_named_cluster_scoped() -> None:
    """Without its CRD in the render a custom kind is namespaced; --cluster-scoped (KIND, KIND.GROUP) says otherwise."""
    scopes = OfflineScopes(custom_kinds=True, cluster_scoped=frozenset({"Tenant", "Policy.security.example.com"}))
    assert scopes.is_namespaced("example.com/v1", "Widget") is True
    assert scopes.is_namespaced("example.com/v1", "Tenant") is False
    assert scopes.is_namespaced("security.example.com/v1", "Policy") is False
    assert scopes.is_namespaced("other.example.com/v1", "Policy") is True
    assert scopes.is_namespaced("apps/v1", "Deploymnet") is None  # a typo in a built-in group stays unknown
    assert OfflineScopes().is_namespaced("example.com/v1", "Widget") is None


# -- the CLI, offline --------------------------------------------------------------------------


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitopsd", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("base", ["manifests/gitopsd", "manifests/metrics-adapter"])
def test_install_bases_render_offline_as_written(base: str) -> None:
    """gitopsd renders its own install bases offline: no ${...} error, templates kept as written."""
    out = _cli("render", "--path", base)
    assert out.returncode == 0, out.stderr
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert any(d["kind"] == "Deployment" for d in docs)
    if base.endswith("metrics-adapter"):
        assert "${" in out.stdout or "<<" in out.stdout  # prometheus-adapter templates untouched


def test_render_path_custom_resource_without_its_crd(tmp_path: Path) -> None:
    """A custom resource renders offline into -n's namespace, or cluster-scoped with --cluster-scoped."""
    (tmp_path / "w.yaml").write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: old}\n")
    (tmp_path / "t.yaml").write_text("apiVersion: example.com/v1\nkind: Tenant\nmetadata: {name: t}\n")
    out = _cli("render", "--path", str(tmp_path), "-n", "shop", "--cluster-scoped", "Tenant")
    assert out.returncode == 0, out.stderr
    docs = {d["kind"]: d for d in yaml.safe_load_all(out.stdout) if d}
    assert docs["Tenant"]["metadata"] == {"name": "t"}
    assert docs["Widget"]["metadata"]["namespace"] == "old"
    out = _cli("render", "--path", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "error: t.yaml: Tenant t is namespaced but sets no metadata.namespace, and the Environment has no"
        " spec.targetNamespace"
    ) or "Tenant t is namespaced" in out.stderr


def test_render_path_typo_in_builtin_kind_is_still_an_error(tmp_path: Path) -> None:
    """A misspelt built-in kind is not mistaken for a custom resource."""
    (tmp_path / "d.yaml").write_text("apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: d}\n")
    out = _cli("render", "--path", str(tmp_path), "-n", "shop")
    assert out.returncode == 1
    assert "unknown kind Deploymnet in apps/v1" in out.stderr and out.stderr.count("\n") == 1


def test_render_path_empty_directory_warns(tmp_path: Path) -> None:
    """An empty render exits 0 but says so on stderr."""
    (tmp_path / "README.md").write_text("nothing here\n")
    out = _cli("render", "--path", str(tmp_path))
    assert out.returncode == 0
    assert out.stderr.strip() == f"warning: {tmp_path}: rendered no objects"
    assert "(0 objects)" in out.stdout


def test_render_path_yaml_error_is_one_line(tmp_path: Path) -> None:
    """A YAML error is one stderr line naming file, line and column."""
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n data: x\n")
    out = _cli("render", "--path", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.startswith("error: bad.yaml:5:2: invalid YAML: ") and out.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--substitute", "novalue"], "--substitute 'novalue': expected KEY=VALUE"),
        (["--substitute", "1X=a"], "--substitute '1X=a': names are letters"),
        (["--substitute", "GITOPSD_REF=a"], "reserved for built-ins"),
        (["--cluster-scoped", "widget"], "--cluster-scoped 'widget': expected a kind"),
    ],
)
def test_render_path_bad_flags_are_usage_errors(tmp_path: Path, args: list[str], words: str) -> None:
    """Bad --substitute / --cluster-scoped values exit 2 with the flag named."""
    out = _cli("render", "--path", str(tmp_path), *args)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and words in out.stderr


def test_render_path_substitutes_only_with_substitute_flag(tmp_path: Path) -> None:
    """--substitute turns substitution on for --path; without it ${...} is printed as written."""
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\ndata: {r: '${REG}'}\n"
    (tmp_path / "cm.yaml").write_text(cm)
    assert "r: ${REG}" in _cli("render", "--path", str(tmp_path)).stdout
    out = _cli("render", "--path", str(tmp_path), "--substitute", "REG=registry.example.com")
    assert "r: registry.example.com" in out.stdout


def test_unknown_kind_offline_message_still_names_the_file() -> None:
    """Offline without custom kinds (the daemon's path never uses it), an unknown group stays an error."""
    tree = MemoryTree({"deploy/w.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"})
    with pytest.raises(UnknownKind, match=r"^deploy/w\.yaml: unknown kind Widget"):
        render(tree, options(), OfflineScopes())


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["dev", "--substitute", "X=1"], "error: --substitute only applies with --path"),
        (["dev", "--cluster-scoped", "Widget"], "error: --cluster-scoped only applies with --path"),
        (["dev", "--environment", "prod"], "error: --environment only applies with --path"),
        (["dev", "--target-namespace", "shop"], "error: --target-namespace only applies with --path"),
        (["--path", ".", "--target-namespace", "a/b"], "error: --target-namespace a/b: not a namespace name"),
    ],
)
def test_render_flags_for_the_other_mode_are_refused(args: list[str], words: str) -> None:
    """--path-only flags with ENV (silently ignored before) and a bad --target-namespace exit 2, naming the flag."""
    out = _cli("render", *args, "--kubeconfig", "/nonexistent")
    assert out.returncode == 2 and out.stderr.startswith(words) and out.stderr.count("\n") == 1, out.stderr


def test_run_config_against_an_unreachable_cluster_exits_2(tmp_path: Path) -> None:
    """`run --config` against an unreachable cluster: 2, as elsewhere, before any Environment is written."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    path = tmp_path / "gitopsd.yaml"
    path.write_text(ENV_DOC.format(name="dev", meta="", extra=""))
    out = _cli("run", "--config", str(path), "--kubeconfig", str(kubeconfig), "-n", "ops")
    assert out.returncode == 2, out.stderr
    # The first request of a daemon is for its release signing key: the cluster is named there.
    assert out.stderr.splitlines()[-1].startswith(
        "error: release signing key ops/gitopsd-release-signing: GET https://127.0.0.1:1/"
    ), out.stderr
