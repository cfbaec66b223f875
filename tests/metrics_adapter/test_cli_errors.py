"""What ``metrics-adapter`` says when the command line, config or kubeconfig is wrong: kubectl's way.

One ``error: ...`` line on stderr, no usage dump and no traceback, exit 2; stdout closed early
(``check ... | head``) is a quiet exit 141. No cluster and no Prometheus needed: every case
stops before either is contacted, or finds Prometheus unreachable on a free port.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from e2e import procs
from e2e.adapter import adapter_binary

RULE = "rules: [{seriesQuery: up, metricsQuery: up, resources: {overrides: {pod: {resource: pod}}}}]\n"
EXTERNAL_RULE = "externalRules: [{seriesQuery: up, metricsQuery: up, resources: {namespaced: false}}]\n"
MODES = {"check": ["check"], "serve": ["--secure-port=1"]}


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [adapter_binary(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "no-default-kubeconfig")},
    )


def config(tmp_path: Path, content: str | bytes = RULE, name: str = "adapter.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return name


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "garbage: [",
            "error: kubeconfig kc:1:11: invalid YAML: expected the node content, "
            "but found '<stream end>' (while parsing a flow node)",
        ),
        (
            "- a\n- b\n",
            "error: kubeconfig kc: not a kubeconfig (expected a mapping with clusters, contexts and users, got a list)",
        ),
        (
            "just a string\n",
            "error: kubeconfig kc: not a kubeconfig (expected a mapping with clusters, contexts and users, got a str)",
        ),
        (b"a: \xff\n", "error: kubeconfig kc: not UTF-8 text (byte 3)"),
        (None, "error: kubeconfig kc does not exist (give --kubeconfig or set KUBECONFIG)"),
    ],
    ids=["not-yaml", "list", "string", "not-utf8", "missing"],
)
def test_unusable_kubeconfig_is_one_line_exit_2(
    tmp_path: Path, mode: str, content: str | bytes | None, message: str
) -> None:
    """An unusable --kubeconfig (bad YAML, not a mapping, not UTF-8, missing): exit 2, one line naming it."""
    if content is not None:
        config(tmp_path, content, "kc")
    out = run(
        tmp_path, *MODES[mode], f"--config={config(tmp_path)}", "--prometheus-url=http://127.0.0.1:1", "--kubeconfig=kc"
    )
    assert (out.returncode, out.stderr) == (2, message + "\n")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"rules: []\n\xff\n", "error: config file adapter.yaml: not UTF-8 text (byte 10)"),
        (
            "queues: [{name: a, redis: {url: 'redis://127.0.0.1:1/0', list: a}}]\n"
            "queues: [{name: b, redis: {url: 'redis://127.0.0.1:1/0', list: b}}]\n",
            "error: config file adapter.yaml:2:1: invalid YAML: key 'queues' is given twice (first on line 1)",
        ),
        (
            RULE + "---\n" + RULE,
            "error: config file adapter.yaml: holds 2 YAML documents; the adapter reads one "
            "(remove the '---' separators)",
        ),
    ],
    ids=["not-utf8", "duplicate-key", "two-documents"],
)
def test_unreadable_config_is_one_line_exit_2(tmp_path: Path, mode: str, content: str | bytes, message: str) -> None:
    """A config not UTF-8, with a key given twice, or of two documents: exit 2, one line naming file and line."""
    out = run(tmp_path, *MODES[mode], f"--config={config(tmp_path, content)}", "--prometheus-url=http://127.0.0.1:1")
    assert (out.returncode, out.stderr) == (2, message + "\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--prometheus-timeout", "5x"],
            "error: argument --prometheus-timeout: invalid duration '5x' (use e.g. 30s, 10m, 1h) (see '{prog} --help')",
        ),
        (
            ["--prometheus-verb", "PUT"],
            "error: argument --prometheus-verb: invalid choice: 'PUT' (choose from 'GET', 'POST') "
            "(see '{prog} --help')",
        ),
        (["--bogus"], "error: unrecognized arguments: --bogus (see '{prog} --help')"),
        (
            ["--metrics-relist-interval", "0s"],
            "error: argument --metrics-relist-interval: duration '0s' must be positive (see '{prog} --help')",
        ),
        (["--secure-port", "abc"], "error: argument --secure-port: invalid int value: 'abc' (see '{prog} --help')"),
        (["--v", "abc"], "error: argument --v/-v: invalid int value: 'abc' (see '{prog} --help')"),
    ],
    ids=["duration", "verb", "unknown-flag", "zero-duration", "port", "verbosity"],
)
@pytest.mark.parametrize("mode", MODES)
def test_usage_error_is_one_line_exit_2(tmp_path: Path, mode: str, args: list[str], message: str) -> None:
    """A bad flag or value: exit 2 and one `error: ... (see 'metrics-adapter [check] --help')` line, no usage."""
    prog = "metrics-adapter check" if mode == "check" else "metrics-adapter"
    if mode == "check" and args[0] in ("--secure-port", "--v"):  # serve-only flags: check does not know them
        message = f"error: unrecognized arguments: {' '.join(args)} (see '{{prog}} --help')"
    out = run(tmp_path, *MODES[mode], f"--config={config(tmp_path)}", *args)
    assert (out.returncode, out.stderr) == (2, message.format(prog=prog) + "\n")


def test_unknown_command_is_one_line_exit_2(tmp_path: Path) -> None:
    """`metrics-adapter bogus`: exit 2 and one line naming the command and the only subcommand."""
    out = run(tmp_path, "bogus")
    assert (out.returncode, out.stderr) == (
        2,
        "error: unknown command 'bogus': the only subcommand is 'check' (see 'metrics-adapter --help')\n",
    )


def test_check_reports_rules_not_checked_when_prometheus_is_unreachable(tmp_path: Path) -> None:
    """Prometheus unreachable: exit 1, one FAIL line for it and `rules[N]: not checked (Prometheus unreachable)`."""
    url = f"http://127.0.0.1:{procs.free_port()}"
    out = run(tmp_path, "check", f"--config={config(tmp_path, RULE + EXTERNAL_RULE)}", f"--prometheus-url={url}")
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    fails = [line for line in lines if line.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].startswith(f"FAIL prometheus {url}: unreachable: ")
    assert "rules[0]: not checked (Prometheus unreachable)" in lines
    assert "externalRules[0]: not checked (Prometheus unreachable)" in lines
    assert "no series matched" not in out.stdout
    assert lines[-1] == "check failed: 1 problem(s)"


def test_closed_stdout_is_a_quiet_exit_141(tmp_path: Path) -> None:
    """`check` with stdout closed by its reader (`| head`): exit 141 (as SIGPIPE), nothing on stderr."""
    args = ["check", f"--config={config(tmp_path)}", "--prometheus-url=http://127.0.0.1:1"]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written: every write fails with EPIPE
    try:
        proc = subprocess.run(
            [adapter_binary(), *args], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, cwd=tmp_path
        )
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, "")
