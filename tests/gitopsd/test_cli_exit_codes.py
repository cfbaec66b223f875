"""The ``gitopsd`` exit codes (0 ok, 1 failed, 2 usage or no usable cluster, 130 interrupted) and one-line errors.

Offline cases run ``gitopsd.cli.main`` in-process (or ``python -m gitopsd`` where a signal is
needed); cluster cases use the local control plane, a real daemon and real credentials.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from e2e.cluster import ClusterInfo
from e2e.daemon import DaemonProcess
from e2e.gitrepo import WorkRepo
from gitopsd.cli import common as cli_common
from gitopsd.cli import main
from gitopsd.kube import config as kube_config
from tests.e2e.kube import kubectl
from tests.gitopsd.conftest import apply_objects, env_object, environment, gitopsd_cli, wait_for, wait_ready

ALL_ENV_COMMANDS = ["get", "history", "sync", "diff", "render", "rollback", "resume", "suspend", "verify"]
NAME_RULES = (
    "not an Environment name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit; "
    "give the namespace with -n, not NS/NAME)"
)
NS_RULES = (
    "not a namespace name (lowercase letters, digits and '-', starting and ending with a letter or digit, "
    "at most 63 characters)"
)


def _kubeconfig(path: Path, server: str, *, namespace: str | None = None, **cluster: Any) -> Path:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "x", "context": context}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(autouse=True)
def _keep_logging_config() -> Iterator[None]:
    """``main`` configures structlog to print to the sys.stderr of the moment, which is capsys's
    stream here: put the previous configuration back, or later tests log to a closed file."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    """``gitopsd ARGV`` in-process: the exit code and stderr's lines."""
    code = main(list(argv))
    return code, capsys.readouterr().err.splitlines()


# -- offline: no cluster needed -------------------------------------------------------------------


@pytest.mark.parametrize("command", ALL_ENV_COMMANDS)
def test_a_missing_kubeconfig_exits_2_naming_the_file(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every Environment command (diff and verify included) exits 2 with one line naming the missing kubeconfig."""
    missing = tmp_path / "nonexistent"
    code, err = _run(capsys, command, "shop", f"--kubeconfig={missing}")
    assert (code, err) == (2, [f"error: kubeconfig {missing} does not exist (give --kubeconfig or set KUBECONFIG)"])


@pytest.mark.parametrize("command", ALL_ENV_COMMANDS)
def test_an_unreachable_api_server_exits_2(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Connection refused at https://127.0.0.1:1: exit 2 and one line naming the server, for every command."""
    config = _kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1", namespace="team-a")
    code, err = _run(capsys, command, "shop", f"--kubeconfig={config}")
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: GET https://127.0.0.1:1/apis/gitopsd.dev/v1alpha1/namespaces/team-a/"), err
    assert "Cannot connect to host 127.0.0.1:1" in err[0], err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not: [yaml\n", "error: kubeconfig {path}:2:1: invalid YAML: expected ',' or ']'"),
        ("- a list\n", "error: kubeconfig {path}: not a kubeconfig (expected a mapping with clusters"),
        ("a string\n", "error: kubeconfig {path}: not a kubeconfig (expected a mapping"),
        ("", "error: cannot use kubeconfig {path}: Invalid kube-config. {path} file is empty"),
    ],
)
def test_a_broken_kubeconfig_exits_2_on_one_line(
    content: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kubeconfig that is not YAML (the parser's message spans lines) or is empty: exit 2, one line naming it."""
    path = tmp_path / "kubeconfig"
    path.write_text(content)
    for command in (["get"], ["diff", "shop"]):
        code, err = _run(capsys, *command, f"--kubeconfig={path}")
        assert code == 2 and len(err) == 1 and err[0].startswith(expected.format(path=path)), (command, err)


def test_an_unknown_context_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--context`` naming no context of the kubeconfig is a configuration error: exit 2 naming it."""
    config = _kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1")
    code, err = _run(capsys, "get", f"--kubeconfig={config}", "--context=nope")
    assert code == 2 and len(err) == 1 and "Expected object with name nope" in err[0], err


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["sync", "shop", "--timeout", "5x"], "error: --timeout 5x: must be a duration such as 30s, 5m or 1h"),
        (["sync", "shop", "--wait", "--timeout", "0"], "error: --timeout 0: must be more than 0"),
        (["sync", "shop", "--timeout", ""], "error: --timeout '': must be a duration such as 30s, 5m or 1h"),
        (["rollback", "shop", "--timeout", "1y"], "error: --timeout 1y: must be a duration such as 30s, 5m or 1h"),
        (["verify", "shop", "--timeout", "5x"], "error: --timeout 5x: must be a duration such as 30s, 5m or 1h"),
        (["rollback", "shop", "--to", "abc"], "error: --to abc: must be a release number (see 'gitopsd history ENV')"),
        (["rollback", "shop", "--to", "0"], "error: --to 0: release numbers start at 1 (see 'gitopsd history ENV')"),
        (["rollback", "shop", "--to", "-3"], "error: --to -3: release numbers start at 1 (see 'gitopsd history ENV')"),
        (["get", ""], f"error: ENV '': {NAME_RULES}"),
        (["sync", "ops/shop"], f"error: ENV ops/shop: {NAME_RULES}"),
        (["diff", "Shop"], f"error: ENV Shop: {NAME_RULES}"),
        (["rollback", "shop", "-n", ""], f"error: --namespace '': {NS_RULES}"),
        (["history", "shop", "-n", "Team_A"], f"error: --namespace Team_A: {NS_RULES}"),
        (
            ["get", "shop", "-A"],
            "error: ENV shop with --all-namespaces: an Environment is named in one namespace (use -n)",
        ),
        (
            ["get", "-n", "ops", "-A"],
            "error: argument -A/--all-namespaces: not allowed with argument -n/--namespace (see 'gitopsd get --help')",
        ),
        (
            ["get", "-o", "table"],
            "error: argument -o/--output: invalid choice: 'table' (choose from 'wide', 'json', 'yaml') "
            "(see 'gitopsd get --help')",
        ),
        (
            ["history", "shop", "-o", "wide"],
            "error: argument -o/--output: invalid choice: 'wide' (choose from 'json', 'yaml') "
            "(see 'gitopsd history --help')",
        ),
        (["suspend"], "error: the following arguments are required: ENV (see 'gitopsd suspend --help')"),
        (["resume", "shop", "--wait"], "error: unrecognized arguments: --wait (see 'gitopsd resume --help')"),
        (["run", "--workers", "0"], "error: --workers 0: must be at least 1"),
        (["run", "--workers", "two"], "error: --workers two: must be a whole number"),
        (["run", "--shutdown-grace", "nan"], "error: --shutdown-grace nan: must be a finite number of seconds"),
        (["run", "--shutdown-grace", "-1"], "error: --shutdown-grace -1: must be at least 0 seconds"),
        (
            ["run", "--webhook-read-timeout", "601"],
            "error: --webhook-read-timeout 601: must be more than 0 and at most 600 seconds",
        ),
        (
            ["run", "--probes-bind-address", ":99999"],
            "error: --probes-bind-address ':99999': expected HOST:PORT or :PORT (a port up to 65535)",
        ),
        (
            ["notify", "--url", "u", "--ref", "refs/heads/main", "--timeout", "0"],
            "error: --timeout 0: must be more than 0 seconds",
        ),
    ],
)
def test_bad_flag_values_exit_2_naming_the_flag(
    argv: list[str], line: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad flag or argument value: exit 2 and exactly one line naming the flag and value, before any cluster."""
    # The kubeconfig does not exist: the flag must be refused before the cluster is even looked for.
    kube = [] if argv[0] == "notify" else [f"--kubeconfig={tmp_path / 'nonexistent'}"]
    code, err = _run(capsys, *argv, *kube)
    assert (code, err) == (2, [line])


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """``gitopsd --help`` exits 0 and its epilog gives the exit-code table."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes (as kubectl):" in out
    for row in (
        "0    success (diff: no differences)",
        "1    the operation failed",
        "2    usage error",
        "130  interrupted",
    ):
        assert row in out, row


def test_ctrl_c_exits_130_with_one_line(tmp_path: Path) -> None:
    """SIGINT while a command waits on the API server: exit 130 and ``error: interrupted``, no traceback."""
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never answers
        config = _kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{server.getsockname()[1]}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gitopsd", "get", f"--kubeconfig={config}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            server.settimeout(60)
            conn, _ = server.accept()  # the request is in flight: the command is inside its handler
            with conn:
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert (proc.returncode, err.splitlines()) == (130, ["error: interrupted"])


def test_the_default_namespace_is_the_contexts_then_the_pods_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without -n: the kubeconfig context's namespace; in a Pod (no kubeconfig) the Pod's own; else ``default``."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    token, own = tmp_path / "sa" / "token", tmp_path / "sa" / "namespace"
    monkeypatch.setattr(kube_config, "IN_CLUSTER_TOKEN", token)
    monkeypatch.setattr(kube_config, "SERVICEACCOUNT_NAMESPACE", own)
    config = _kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:1", namespace="team-a")
    assert cli_common.default_namespace(str(config), None) == ("team-a", "kubeconfig context x")
    bare = _kubeconfig(tmp_path / "bare", "https://127.0.0.1:1")
    assert cli_common.default_namespace(str(bare), None) == ("default", "default")
    assert cli_common.default_namespace(None, None) == ("default", "default")  # no kubeconfig, not in a Pod
    token.parent.mkdir()
    token.write_text("t")
    own.write_text("shop-prod\n")
    assert cli_common.default_namespace(None, None) == ("shop-prod", "the Pod's namespace")
    monkeypatch.setenv("KUBECONFIG", str(config))  # a kubeconfig wins over the Pod's service account
    assert cli_common.default_namespace(None, None) == ("team-a", "kubeconfig context x")


# -- against the local cluster ----------------------------------------------------------------------

APP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {colour: blue}
"""


@pytest.mark.cluster
def test_diff_sync_and_friends_on_a_real_cluster(
    gitopsd_crd: ClusterInfo,
    namespaces: Callable[[str], str],
    repo: WorkRepo,
    start_daemon: Callable[..., DaemonProcess],
    tmp_path: Path,
) -> None:
    """diff: 0 in sync, 1 differences, 2 on any error; a missing Environment or a failing render: 1 elsewhere."""
    cluster = gitopsd_crd
    ops, app = namespaces("exit-ops"), namespaces("exit-app")
    first = repo.commit({"deploy/app.yaml": APP, "broken/app.yaml": "kind: [unclosed\n"})
    start_daemon(f"--namespace={ops}")
    apply_objects(
        cluster,
        environment("ok", ops, repo.file_url, target=app, branch="main", interval="1h"),
        environment(
            "broken", ops, repo.file_url, target=app, path="broken", branch="main", interval="1h", suspend=True
        ),
    )
    wait_ready(cluster, ops, "ok", revision=f"main@sha1:{first}")

    out = gitopsd_cli(cluster, "diff", "ok", "-n", ops)
    assert out.returncode == 0 and out.stderr == "", out.stdout + out.stderr
    # Suspended, so the daemon does not revert the hand edit (a watched edit) before diff sees it.
    assert gitopsd_cli(cluster, "suspend", "ok", "-n", ops).returncode == 0
    assert kubectl(cluster, "patch", "configmap/settings", "-n", app, "-p", '{"data":{"colour":"red"}}').returncode == 0
    out = gitopsd_cli(cluster, "diff", "ok", "-n", ops)
    assert out.returncode == 1 and out.stderr == "", out.stdout + out.stderr
    assert "colour: red" in out.stdout and "colour: blue" in out.stdout

    missing = f'error: Environment "nope" not found in namespace "{ops}"'
    out = gitopsd_cli(cluster, "diff", "nope", "-n", ops)
    assert (out.returncode, out.stderr.splitlines()) == (2, [missing])
    for command in ("get", "history", "sync", "render", "rollback", "resume", "suspend", "verify"):
        out = gitopsd_cli(cluster, command, "nope", "-n", ops)
        assert (out.returncode, out.stderr.splitlines()) == (1, [missing]), command

    # The same bad manifests: render fails (1), diff cannot tell (2); one line each, naming the file.
    for command, code in (("render", 1), ("diff", 2)):
        out = gitopsd_cli(cluster, command, "broken", "-n", ops)
        lines = out.stderr.splitlines()
        assert out.returncode == code and len(lines) == 1 and lines[0].startswith("error: "), (command, out.stderr)
        assert "app.yaml" in lines[0], (command, out.stderr)

    # A local failure (the CLI's Git cache is a file, not a directory): one line naming the path, no traceback.
    cache = tmp_path / "cache-is-a-file"
    cache.write_text("")
    for command, code in (("render", 1), ("diff", 2)):
        res = subprocess.run(
            [sys.executable, "-m", "gitopsd", command, "ok", "-n", ops, f"--kubeconfig={cluster.kubeconfig}"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "GITOPSD_CACHE": str(cache)},
        )
        assert (res.returncode, res.stderr.splitlines()) == (code, [f"error: {cache}/cli/git: Not a directory"])


def _token_kubeconfig(cluster: ClusterInfo, path: Path, token: str, namespace: str) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "e2e", "cluster": {"server": cluster.api_url, "certificate-authority": str(cluster.ca_cert)}}
        ],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "x", "context": {"cluster": "e2e", "user": "u", "namespace": namespace}}],
        "current-context": "x",
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.cluster
def test_401_and_403_exit_1_as_in_kubectl_and_2_for_diff(
    gitopsd_crd: ClusterInfo, namespaces: Callable[[str], str], tmp_path: Path
) -> None:
    """The API server refusing the credentials (401) or the request (403) fails the operation (1; diff: 2)."""
    cluster = gitopsd_crd
    ns = namespaces("exit-auth")
    assert kubectl(cluster, "create", "serviceaccount", "nobody", "-n", ns).returncode == 0
    out = kubectl(cluster, "create", "token", "nobody", "-n", ns, "--duration=1h")
    assert out.returncode == 0, out.stderr
    cases = {
        "bad-token": (
            "error: you must be logged in to the server: it refused the kubeconfig's credentials (Unauthorized)",
            "not-a-token",
        ),
        "no-rbac": (
            f'error: environments.gitopsd.dev "shop" is forbidden: User "system:serviceaccount:{ns}:nobody" '
            f'cannot get resource "environments" in API group "gitopsd.dev" in the namespace "{ns}"',
            out.stdout.strip(),
        ),
    }
    for name, (line, token) in cases.items():
        config = _token_kubeconfig(cluster, tmp_path / name, token, ns)
        for command, code in (("sync", 1), ("get", 1), ("diff", 2)):
            res = subprocess.run(
                [sys.executable, "-m", "gitopsd", command, "shop", f"--kubeconfig={config}"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert (res.returncode, res.stderr.splitlines()) == (code, [line]), (name, command)


@pytest.mark.cluster
def test_a_tls_failure_exits_2(gitopsd_crd: ClusterInfo, tmp_path: Path) -> None:
    """A server certificate the kubeconfig does not trust is a connection failure: exit 2, one line saying so."""
    config = _kubeconfig(tmp_path / "kubeconfig", gitopsd_crd.api_url)  # no CA: the system's do not sign it
    out = gitopsd_cli(None, "get", f"--kubeconfig={config}")
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: GET {gitopsd_crd.api_url}/") and "CERTIFICATE_VERIFY_FAILED" in lines[0]


@pytest.mark.cluster
def test_run_without_a_namespace_flag_watches_the_contexts_namespace(
    gitopsd_crd: ClusterInfo, namespaces: Callable[[str], str], repo: WorkRepo, tmp_path: Path
) -> None:
    """``gitopsd run`` with neither -n nor -A logs and reconciles only the context's namespace; Ctrl-C exits 130."""
    cluster = gitopsd_crd
    mine, other, app = namespaces("exit-mine"), namespaces("exit-other"), namespaces("exit-runapp")
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for ctx in config["contexts"]:
        ctx["context"]["namespace"] = mine
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    first = repo.commit({"deploy/app.yaml": APP})
    apply_objects(
        cluster,
        environment("here", mine, repo.file_url, target=app, branch="main", interval="1h"),
        environment("there", other, repo.file_url, target=app, branch="main", interval="1h"),
    )
    daemon = DaemonProcess(kubeconfig, tmp_path / "daemon", name="gitopsd-default-ns").start()
    try:
        wait_ready(cluster, mine, "here", revision=f"main@sha1:{first}")
        started = wait_for("the 'watching Environments' log line", lambda: _log_event(daemon, "watching Environments"))
        assert started["namespace"] == mine and started["namespace_from"].startswith("kubeconfig context "), started
        # "there" is outside the watched namespace: no status at all, even after "here" got one.
        assert not env_object(cluster, other, "there").get("status")
        assert daemon.proc is not None
        daemon.proc.popen.send_signal(signal.SIGINT)
        assert daemon.proc.popen.wait(timeout=60) == 130
        daemon.proc = None
    finally:
        if daemon.proc is not None:
            daemon.stop()


def _log_event(daemon: DaemonProcess, event: str) -> dict[str, Any] | None:
    for line in daemon.log_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            return record
    return None
