"""Which kubeconfig gitopsd and metrics-adapter use, and how $KUBECONFIG's files merge (kubectl's rules).

Temporary kubeconfig files, $KUBECONFIG and $HOME set per test, the service-account paths
pointed into the test's directory: no cluster needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gitopsd.kube import config as kube_config
from gitopsd.kube.errors import ConfigError


def kubeconfig(path: Path, *, server: str, context: str, namespace: str | None = None, current: bool = True) -> Path:
    """A kubeconfig with one cluster, user and context named after ``context``."""
    ctx: dict[str, str] = {"cluster": context, "user": context}
    if namespace:
        ctx["namespace"] = namespace
    doc: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": context, "user": {"token": f"token-{context}"}}],
        "contexts": [{"name": context, "context": ctx}],
    }
    if current:
        doc["current-context"] = context
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $HOME, no $KUBECONFIG, and no service account mounted (its paths under tmp_path)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setattr(kube_config, "IN_CLUSTER_TOKEN", tmp_path / "sa" / "token")
    monkeypatch.setattr(kube_config, "SERVICEACCOUNT_NAMESPACE", tmp_path / "sa" / "namespace")
    return home


def mount_service_account(tmp_path: Path, namespace: str) -> None:
    (tmp_path / "sa").mkdir(exist_ok=True)
    (tmp_path / "sa" / "token").write_text("sa-token")
    (tmp_path / "sa" / "namespace").write_text(namespace + "\n")


def home_config(home: Path, **kw: object) -> Path:
    (home / ".kube").mkdir(exist_ok=True)
    return kubeconfig(home / ".kube" / "config", **kw)  # type: ignore[arg-type]


# -- precedence ----------------------------------------------------------------------------------


def test_an_explicit_file_wins_over_kubeconfig_home_and_the_service_account(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--kubeconfig is used alone, whatever $KUBECONFIG, ~/.kube/config and the Pod offer."""
    explicit = kubeconfig(tmp_path / "explicit", server="https://explicit:6443", context="explicit")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "env", server="https://env:6443", context="env")))
    home_config(home, server="https://home:6443", context="home")
    mount_service_account(tmp_path, "pod-ns")
    conn = kube_config.load(str(explicit))
    assert (conn.server, conn.context, conn.authorization()) == (
        "https://explicit:6443",
        "explicit",
        "Bearer token-explicit",
    )
    assert kube_config.locate(str(explicit)) == kube_config.Located((str(explicit),), "--kubeconfig")


def test_kubeconfig_wins_over_home_and_home_over_the_service_account(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$KUBECONFIG before ~/.kube/config before the in-cluster service account."""
    mount_service_account(tmp_path, "pod-ns")
    assert kube_config.locate() == kube_config.Located((), "in-cluster")
    home_file = home_config(home, server="https://home:6443", context="home")
    assert kube_config.locate() == kube_config.Located((str(home_file),), "~/.kube/config")
    assert kube_config.load().server == "https://home:6443"
    env = kubeconfig(tmp_path / "env", server="https://env:6443", context="env")
    monkeypatch.setenv("KUBECONFIG", str(env))
    assert kube_config.locate() == kube_config.Located((str(env),), "KUBECONFIG")
    assert kube_config.load().server == "https://env:6443"


def test_kubeconfig_files_merge_first_one_wins_each_name_and_the_current_context(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two files: a context, cluster or user named in both is the first file's; so is current-context."""
    first = kubeconfig(tmp_path / "first", server="https://first:6443", context="shared", namespace="from-first")
    second = tmp_path / "second"
    second.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {"name": "shared", "cluster": {"server": "https://second:6443"}},
                    {"name": "other", "cluster": {"server": "https://other:6443", "insecure-skip-tls-verify": True}},
                ],
                "users": [{"name": "shared", "user": {"token": "second"}}, {"name": "other", "user": {"token": "o"}}],
                "contexts": [
                    {"name": "shared", "context": {"cluster": "shared", "user": "shared", "namespace": "from-second"}},
                    {"name": "other", "context": {"cluster": "other", "user": "other", "namespace": "other-ns"}},
                ],
                "current-context": "other",  # the kubernetes package alone would take this one (the last)
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    conn = kube_config.load()
    assert (conn.server, conn.context, conn.namespace) == ("https://first:6443", "shared", "from-first")
    assert conn.authorization() == "Bearer token-shared"
    # A context only the second file has is usable, with its own cluster and user.
    other = kube_config.load(context="other")
    assert (other.server, other.namespace, other.authorization()) == ("https://other:6443", "other-ns", "Bearer o")
    # Swapped order: the other file's entries and current-context win.
    monkeypatch.setenv("KUBECONFIG", f"{second}:{first}")
    assert kube_config.load().context == "other"
    assert kube_config.load(context="shared").server == "https://second:6443"


def test_current_context_comes_from_the_first_file_that_sets_one(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first file without current-context does not hide the second file's."""
    a = kubeconfig(tmp_path / "a", server="https://a:6443", context="a", current=False)
    b = kubeconfig(tmp_path / "b", server="https://b:6443", context="b")
    monkeypatch.setenv("KUBECONFIG", f"{a}:{b}")
    conn = kube_config.load()
    assert (conn.context, conn.server) == ("b", "https://b:6443")


def test_merge_is_plain_data() -> None:
    """merge(): first wins per name in each section, entries without a clash kept in file order."""
    merged = kube_config.merge(
        [
            {"clusters": [{"name": "x", "cluster": {"server": "1"}}], "contexts": None},
            {
                "clusters": [{"name": "x", "cluster": {"server": "2"}}, {"name": "y", "cluster": {"server": "3"}}],
                "current-context": "y",
            },
            {"current-context": "z"},
        ]
    )
    assert merged == {
        "clusters": [{"name": "x", "cluster": {"server": "1"}}, {"name": "y", "cluster": {"server": "3"}}],
        "contexts": [],
        "users": [],
        "current-context": "y",
    }


def test_a_listed_file_that_does_not_exist_is_skipped(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$KUBECONFIG naming a missing file next to a present one uses the present one, as kubectl does."""
    present = kubeconfig(tmp_path / "present", server="https://present:6443", context="p")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'gone'}::{present}")
    assert kube_config.locate() == kube_config.Located((str(present),), "KUBECONFIG")
    assert kube_config.load().server == "https://present:6443"


def test_kubeconfig_listing_only_missing_files_falls_back_to_the_service_account_not_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$KUBECONFIG set: ~/.kube/config is not read (kubectl ignores it too); in a Pod the account is used."""
    home_config(home, server="https://home:6443", context="home")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "gone"))
    with pytest.raises(ConfigError) as err:
        kube_config.load()
    assert str(err.value) == f"kubeconfig {tmp_path / 'gone'} does not exist (give --kubeconfig or set KUBECONFIG)"
    mount_service_account(tmp_path, "pod-ns")
    assert kube_config.locate() == kube_config.Located((), "in-cluster")


def test_nothing_usable_is_one_error_naming_what_was_looked_for(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No flag, no file, no service account: the error names the file(s) looked for and how to give one."""
    hint = "(give --kubeconfig or set KUBECONFIG)"
    with pytest.raises(ConfigError) as err:
        kube_config.load()
    assert str(err.value) == f"kubeconfig {home / '.kube' / 'config'} does not exist {hint}"
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    with pytest.raises(ConfigError) as err:
        kube_config.load()
    assert str(err.value) == f"no file listed in KUBECONFIG exists ({tmp_path / 'a'}, {tmp_path / 'b'}) {hint}"
    with pytest.raises(ConfigError) as err:
        kube_config.load(str(tmp_path / "explicit"))
    assert str(err.value) == f"kubeconfig {tmp_path / 'explicit'} does not exist {hint}"


def test_a_broken_file_in_the_merge_is_named(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One file of $KUBECONFIG that is not YAML stops loading with its name, line and column."""
    good = kubeconfig(tmp_path / "good", server="https://good:6443", context="g")
    bad = tmp_path / "bad"
    bad.write_text("clusters: [\n")
    monkeypatch.setenv("KUBECONFIG", f"{good}:{bad}")
    with pytest.raises(ConfigError, match=rf"^kubeconfig {bad}:2:1: invalid YAML"):
        kube_config.load()


def test_an_unknown_context_is_a_config_error(home: Path, tmp_path: Path) -> None:
    """--context naming no context of the files: ConfigError on one line naming the file and the context."""
    path = kubeconfig(tmp_path / "kc", server="https://a:6443", context="a")
    with pytest.raises(ConfigError) as err:
        kube_config.load(str(path), "nope")
    assert str(err.value).startswith(f"cannot use kubeconfig {path}: ") and "nope" in str(err.value)
    assert "\n" not in str(err.value)


# -- the default namespace -----------------------------------------------------------------------


def test_default_namespace_follows_the_same_choice(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The context's namespace (of the merged files); in a Pod its own; else default; never an error."""
    assert kube_config.default_namespace(None, None) == ("default", "default")
    mount_service_account(tmp_path, "pod-ns")
    assert kube_config.default_namespace(None, None) == ("pod-ns", "the Pod's namespace")
    a = kubeconfig(tmp_path / "a", server="https://a:6443", context="a", namespace="team-a")
    b = kubeconfig(tmp_path / "b", server="https://b:6443", context="b", namespace="team-b")
    monkeypatch.setenv("KUBECONFIG", f"{a}:{b}")
    assert kube_config.default_namespace(None, None) == ("team-a", "kubeconfig context a")
    assert kube_config.default_namespace(None, "b") == ("team-b", "kubeconfig context b")
    bare = kubeconfig(tmp_path / "bare", server="https://c:6443", context="c")
    assert kube_config.default_namespace(str(bare), None) == ("default", "default")
    assert kube_config.default_namespace(str(tmp_path / "missing"), None) == ("default", "default")
    assert kube_config.load(str(a)).namespace == "team-a"


def test_an_exec_plugin_gives_the_token_and_marks_the_connection_refreshing(home: Path, tmp_path: Path) -> None:
    """An exec credential plugin runs through the kubernetes package; the transport must ask it again off the loop."""
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(
        "#!/bin/sh\n"
        'echo \'{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",'
        ' "status": {"token": "from-plugin"}}\'\n'
    )
    plugin.chmod(0o755)
    path = tmp_path / "kc"
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://c:6443"}}],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "exec": {
                                "apiVersion": "client.authentication.k8s.io/v1",
                                "command": str(plugin),
                                "interactiveMode": "Never",
                            }
                        },
                    }
                ],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    conn = kube_config.load(str(path))
    assert (conn.authorization(), conn.refreshes) == ("Bearer from-plugin", True)
