"""The docs check: every command in README.md, docs/*.md and manifests/README.md runs as shown.

Commands are the lines of ```sh / ```bash / ```shell blocks and the ``$ `` lines of ```console
blocks; a line ending in ``\\`` continues on the next; ``#`` starts a comment, and a trailing
``# exit N`` states the exit code. A block that opens with ``#!`` is a script file, one unit.

Each command is exactly one of:

- **offline** (``OFFLINE``): it needs no cluster and no network. It is run here, from the
  repository root, with .venv/bin first on PATH and KUBECONFIG pointing nowhere, and must exit
  0 (or the stated code) and, in a console block, print every output line shown under it;
- **run elsewhere** (``RUN_ELSEWHERE``): a named test or script runs it (or the same thing
  against the local cluster), and a named line of a named file shows that it does;
- **not run here** (``NOT_RUN_HERE``): nothing here can run it (no container engine, no
  network), with the reason; the README's "What does not work yet" says so too.

Anything else fails, naming the file and line. Placeholders are upper-case words (``ENV``,
``REGISTRY/gitopsd:TAG``, ``vX.Y.Z``): a command holding one is never taken as offline.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "manifests" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200
SHELL_FENCES = {"sh", "bash", "shell"}
FENCE = re.compile(r"^(\s*)```(\S*)")
PLACEHOLDER = re.compile(r"(?<![$\w./-])(?:vX\.Y\.Z|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)(?![\w=])")


@dataclass(frozen=True)
class Command:
    """One command of the docs, where it is, and what the docs say it does."""

    path: Path
    line: int
    text: str
    exit_code: int = 0
    output: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


@dataclass(frozen=True)
class Elsewhere:
    """Commands matching ``pattern`` are run by ``by``; ``proof`` (file, text) shows where."""

    pattern: str
    by: str
    proof: tuple[str, str]


# Commands that need no cluster and no network: run by test_offline_command_runs_as_shown.
OFFLINE = [
    r"(gitopsd|metrics-adapter)( check| [a-z]+)? --(help|version)",
    r"gitopsd render --path \S+( --[a-z-]+[ =]\S+)*",
    r"gitopsd [a-z]+ .*--kubeconfig (/nonexistent|tests/docs/fixtures/\S+)",
    r"metrics-adapter( check)? --config (manifests|tests/docs/fixtures)/\S+ --prometheus-url http://127\.0\.0\.1:\d+",
]

DEMO = "e2e/demo/story.py"
RUN_ELSEWHERE = [
    Elsewhere(r"\./scripts/demo\.sh", "tests/demo/test_demo.py", ("tests/demo/test_demo.py", '"demo.sh"')),
    Elsewhere(r"\./scripts/test\.sh", ".ci/run (CI)", (".ci/run", "./scripts/test.sh")),
    Elsewhere(
        r"kubectl apply --server-side -k ('https://github\.com/gitopsd/gitopsd//)?manifests/(gitopsd|metrics-adapter)"
        r"(\?ref=v0\.1\.0')?",
        "tests/manifests/test_install.py (the same bases, from the checkout)",
        ("tests/manifests/conftest.py", 'kit.overlay(workdir / "gitopsd", [kit.MANIFESTS / "gitopsd"]'),
    ),
    Elsewhere(
        r"kubectl -n gitopsd-system rollout status deployment/gitopsd",
        "tests/manifests/test_install.py",
        ("tests/manifests/test_install.py", '"rollout", "status", f"deployment/{name}"'),
    ),
    Elsewhere(
        r"kubectl apply --server-side -f [\w./-]+\.yaml",
        "tests/demo/test_demo.py",
        (DEMO, "kubectl apply --server-side -f"),
    ),
    Elsewhere(
        r"kubectl get env( -n \S+| -A)?",
        "tests/gitopsd/test_crd.py",
        ("tests/gitopsd/test_crd.py", 'kubectl(crd, "get", "env", "-n", namespace)'),
    ),
    Elsewhere(
        r"gitopsd (get|sync|history|diff|suspend|resume)\b.*",
        "tests/gitopsd/test_cli.py, tests/demo/test_demo.py",
        ("tests/gitopsd/test_cli.py", '"sync", "shop", "-n", ops, "--wait"'),
    ),
    Elsewhere(
        r"gitopsd rollback \S+ .*",
        "tests/gitopsd/test_releases.py, tests/demo/test_demo.py",
        ("tests/gitopsd/test_releases.py", 'gitopsd_cli(cluster, "rollback", "prod"'),
    ),
    Elsewhere(
        r"kubectl get --raw '?/apis/(custom|external)\.metrics\.k8s\.io/\S+",
        "tests/demo/test_demo.py, tests/metrics_adapter/test_hpa.py",
        (DEMO, "kubectl get --raw '/apis/external.metrics.k8s.io/v1beta1/namespaces/"),
    ),
    Elsewhere(r"kubectl -n \S+ get hpa \S+", "tests/demo/test_demo.py", (DEMO, "kubectl get hpa -n")),
    Elsewhere(
        r"kubectl -n metrics-adapter get configmap metrics-adapter-config -o jsonpath=.*",
        "tests/docs/test_docs.py::test_adapter_config_file_is_in_the_configmap (offline equivalent)",
        ("tests/docs/test_docs.py", "def test_adapter_config_file_is_in_the_configmap"),
    ),
    Elsewhere(
        r"metrics-adapter check --config config\.yaml --prometheus-url \S+.*",
        "tests/metrics_adapter/test_cli.py",
        ("tests/metrics_adapter/test_cli.py", 'run("check", f"--config={cfg}"'),
    ),
    Elsewhere(
        r"kubectl -n gitopsd-system get events --field-selector reason=RolledBack",
        "tests/demo/test_demo.py",
        (DEMO, "--field-selector reason=RolledBack"),
    ),
    Elsewhere(
        r"script: docs/push-to-deploy\.md:#!/bin/sh # Tell gitopsd about every ref .*",
        "tests/demo/test_demo.py (the demo's post-receive hook is this script)",
        ("e2e/demo/shop.py", '-m gitopsd notify --url "{repo_url}" --ref "$ref" --after "$new" --timeout 5'),
    ),
    Elsewhere(
        r"kubectl -n gitopsd-system get lease gitopsd -o jsonpath=.*holderIdentity.*",
        "tests/gitopsd/test_leader_election.py (the Lease's holderIdentity, read through the API)",
        ("tests/gitopsd/test_leader_election.py", 'get("spec") or {}).get("holderIdentity")'),
    ),
    Elsewhere(
        r"kubectl -n gitopsd-system create secret generic git-ssh --from-file=identity=\S+ --from-file=known_hosts=\S+",
        "tests/gitopsd/sources/test_ssh.py (a Secret with identity and known_hosts)",
        ("tests/gitopsd/sources/test_ssh.py", "identity + known_hosts"),
    ),
    Elsewhere(
        r"kubectl kustomize deploy/gitopsd \| grep image:"
        r"|kubectl apply --server-side -k deploy/(gitopsd|metrics-adapter)",
        "tests/manifests (an overlay of the base with images: set, rendered and applied)",
        ("tests/manifests/conftest.py", "kit.overlay("),
    ),
    Elsewhere(
        r"pipx install \.",
        "tests/unit/test_packaging.py (the wheel pipx builds and installs from the checkout)",
        ("tests/unit/test_packaging.py", "wheel"),
    ),
    Elsewhere(
        r"kubectl -n (gitopsd-system|metrics-adapter) get pods|kubectl get apiservices \| grep metrics",
        "tests/manifests/test_install.py (Pods of both bases, the APIServices registered)",
        ("tests/manifests/test_install.py", "def test_apiservices_are_registered"),
    ),
    Elsewhere(
        r"kubectl -n gitopsd-system create secret generic git-credentials --from-literal=username=gitopsd"
        r" --from-literal=password=\"\$TOKEN\"",
        "tests/gitopsd/test_git_auth.py (a Secret with username and password)",
        ("tests/gitopsd/test_git_auth.py", "def test_https_basic_auth_then_wrong_password_stalls"),
    ),
    Elsewhere(
        r"\.venv/bin/python -m e2e\.cluster (up|down) .*",
        "tests/e2e/test_lifecycle.py, tests/e2e/test_existing_cluster_mode.py",
        ("tests/e2e/test_lifecycle.py", '"-m", "e2e.cluster"'),
    ),
    Elsewhere(
        r"\.venv/bin/python -m e2e\.image (build|inspect \S+)",
        "tests/image/test_image.py (build prints the archive's path last, inspect names the image)",
        ("tests/image/test_image.py", '"-m", "e2e.image", "inspect"'),
    ),
    Elsewhere(
        r"podman (load --input|run --rm --runtime runc --ulimit \S+ --ulimit) \S+( .*)?",
        "tests/image/conftest.py (loads the archive, runs the image with runc and lowered rlimits)",
        ("tests/image/conftest.py", '"podman", "load", "--input"'),
    ),
    Elsewhere(
        r"GITOPSD_E2E_KUBECONFIG=\S+ GITOPSD_E2E_HARNESS=0 \.venv/bin/python -m pytest tests/e2e -q -rs",
        "tests/e2e/test_existing_cluster_mode.py",
        ("tests/e2e/test_existing_cluster_mode.py", "GITOPSD_E2E_HARNESS"),
    ),
]

# Commands nothing here runs, and why.
NO_CONTAINER_ENGINE = "docker, kind and registries are not run here (tests/image builds the image with podman)"
NO_RELEASE = "no release has been published yet (README: What does not work yet)"
USER_CLUSTER = "acts on a user's monitoring stack, secrets or objects: plain kubectl, nothing of ours to run"
NOT_RUN_HERE = {
    r"docker (build|push) .*|podman .*": NO_CONTAINER_ENGINE,
    r"kind (create|load|delete) .*|scripts/kind-e2e\.sh .*|docker buildx .*": NO_CONTAINER_ENGINE,
    r"kubectl (apply --server-side|delete) -f https://github\.com/gitopsd/gitopsd/releases/download/\S+"
    r"|kubectl (apply --server-side|delete) -k 'https://github\.com/gitopsd/gitopsd//manifests/\S+\?ref=v0\.2\.0'"
    r"|pipx install (https://github\.com/gitopsd/gitopsd/releases/download/\S+|'git\+https://\S+@v0\.1\.0')"
    r"|pipx upgrade gitopsd": NO_RELEASE,
    r"kubectl -n gitopsd-system logs deployment/gitopsd.*": "kwok nodes run no containers, so no Pod logs here",
    r"kubectl delete -k 'https://github\.com/gitopsd/gitopsd//manifests/\S+\?ref=v0\.1\.0'": NO_RELEASE,
    r"kubectl -n gitopsd-system rollout restart deployment/gitopsd": "kwok nodes run no containers to restart",
    r"kubectl -n monitoring port-forward svc/prometheus 9090 &": USER_CLUSTER,
    r"kubectl -n \S+ create secret generic (gitopsd-webhooks|metrics-adapter-queues) .*": USER_CLUSTER,
    r"kubectl create clusterrolebinding prometheus-metrics-adapter .*": USER_CLUSTER,
    r"kubectl -n monitoring (create|label) configmap gitopsd-dashboard .*": USER_CLUSTER,
    r"kubectl (get|delete) deployments,services,configmaps,horizontalpodautoscalers -A -l \S+": USER_CLUSTER,
    r"sed 's\|\"IMAGE\"\|.*kubectl --kubeconfig /tmp/kind-\S+ apply --server-side -f -": NO_CONTAINER_ENGINE,
    r"GITOPSD_E2E_KUBECONFIG=/tmp/kind-\S+ GITOPSD_E2E_IMAGE=\S+ \./scripts/test\.sh": NO_CONTAINER_ENGINE,
    r"script: docs/push-to-deploy\.md:#!/bin/sh # As above, sending the generic hook's request by hand\.": (
        "the curl/openssl variant of the hook: no test sends it (gitopsd notify, which sends the same request, is run)"
    ),
}


def _split_comment(line: str) -> tuple[str, str]:
    """``code  # comment`` → (code, comment); a ``#`` inside quotes or a word is not a comment."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def _exit_code(comment: str) -> int:
    found = re.search(r"\bexit (\d+)\b", comment)
    return int(found.group(1)) if found else 0


def extract(path: Path) -> list[Command]:
    """The commands of one Markdown file, in order."""
    lines = path.read_text().splitlines()
    commands: list[Command] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        lang, start = fence.group(2), i + 1
        end = next(j for j in range(start, len(lines)) if lines[j].strip().startswith("```"))
        body = [line[len(fence.group(1)) :] for line in lines[start:end]]
        if lang in SHELL_FENCES and body and body[0].startswith("#!"):
            summary = " ".join(line for line in body[:2])
            commands.append(Command(path, start + 1, f"script: {path.relative_to(ROOT)}:{summary}"))
        elif lang in SHELL_FENCES:
            commands += _commands(path, start, body, console=False)
        elif lang == "console":
            commands += _commands(path, start, body, console=True)
        i = end + 1
    return commands


def _commands(path: Path, first: int, body: list[str], *, console: bool) -> list[Command]:
    found: list[Command] = []
    j = 0
    while j < len(body):
        raw, line_no = body[j], first + j + 1
        j += 1
        if console and not raw.startswith("$ "):
            continue
        code, comment = _split_comment(raw.removeprefix("$ ") if console else raw)
        while code.endswith("\\") and j < len(body):
            more, comment = _split_comment(body[j])
            code = code[:-1].rstrip() + " " + more.strip()
            j += 1
        if not code.strip():
            continue
        output: list[str] = []
        while console and j < len(body) and not body[j].startswith("$ "):
            if body[j].strip():
                output.append(body[j].rstrip())
            j += 1
        found.append(Command(path, line_no, " ".join(code.split()), _exit_code(comment), tuple(output)))
    return found


ALL = [command for path in DOCS for command in extract(path)]


def is_offline(command: Command) -> bool:
    return not PLACEHOLDER.search(command.text) and any(re.fullmatch(p, command.text) for p in OFFLINE)


def elsewhere(command: Command) -> Elsewhere | None:
    return next((e for e in RUN_ELSEWHERE if re.fullmatch(e.pattern, command.text)), None)


def not_run_reason(command: Command) -> str | None:
    return next((why for p, why in NOT_RUN_HERE.items() if re.fullmatch(p, command.text)), None)


OFFLINE_COMMANDS = [c for c in ALL if is_offline(c)]


@pytest.mark.parametrize("command", OFFLINE_COMMANDS, ids=[c.where for c in OFFLINE_COMMANDS])
def test_offline_command_runs_as_shown(command: Command, tmp_path: Path) -> None:
    """An offline command exits with the code the docs state and prints the output they show."""
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")
    env["GITOPSD_CACHE"] = str(tmp_path / "cache")
    out = subprocess.run(
        ["bash", "-c", command.text], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    said = out.stdout + out.stderr
    assert out.returncode == command.exit_code, (
        f"{command.where}: `{command.text}` exited {out.returncode}, the docs say {command.exit_code}:\n{said[-2000:]}"
    )
    missing = [line for line in command.output if line.strip() not in said]
    assert not missing, f"{command.where}: `{command.text}` did not print {missing!r}; it printed:\n{said[-2000:]}"


def test_every_command_is_run_somewhere() -> None:
    """Each command in the docs is offline (run here), run by a named test or script, or listed as not run here."""
    unaccounted = [f"{c.where}: {c.text}" for c in ALL if not (is_offline(c) or elsewhere(c) or not_run_reason(c))]
    assert not unaccounted, (
        "commands in the docs that no test runs (make them offline, or add them to RUN_ELSEWHERE with the test "
        "that runs them):\n" + "\n".join(unaccounted)
    )


def test_run_elsewhere_table_is_true() -> None:
    """Every RUN_ELSEWHERE entry names files that exist, holds its proof, and matches a command in the docs."""
    problems = []
    for entry in RUN_ELSEWHERE:
        file, text = entry.proof
        path = ROOT / file
        if not path.is_file():
            problems.append(f"{entry.pattern}: {file} does not exist")
        elif text not in path.read_text():
            problems.append(f"{entry.pattern}: {file} does not contain {text!r}")
        if not any(re.fullmatch(entry.pattern, c.text) for c in ALL):
            problems.append(f"{entry.pattern}: no command in the docs matches it any more")
    for pattern in NOT_RUN_HERE:
        if not any(re.fullmatch(pattern, c.text) for c in ALL):
            problems.append(f"{pattern}: (NOT_RUN_HERE) no command in the docs matches it any more")
    assert not problems, "\n".join(problems)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    in_fence = False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := re.match(r"#{1,6} (.+)", line)):
            slug = _slug(m.group(1))
            n, candidate = 0, slug
            while candidate in anchors:
                n += 1
                candidate = f"{slug}-{n}"
            anchors.add(candidate)
    return anchors


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_relative_links_resolve() -> None:
    """Every relative link in the docs points at an existing file, and at an existing heading when it names one."""
    broken = []
    for path in DOCS:
        in_fence = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if FENCE.match(line):
                in_fence = not in_fence
                continue
            if in_fence:
                continue
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target):
                    continue
                file, _, anchor = target.partition("#")
                dest = (path.parent / file).resolve() if file else path
                where = f"{path.relative_to(ROOT)}:{number}: {target}"
                if not dest.exists():
                    broken.append(f"{where}: no such file")
                elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                    broken.append(f"{where}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_readme_is_short() -> None:
    """The README stays at most 200 lines: reference material lives in docs/."""
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_readme_quick_start_is_what_ci_runs() -> None:
    """The README's quick start is exactly the two commands, and CI runs the second one as written."""
    quick = [c.text for c in extract(ROOT / "README.md")][:2]
    assert quick == ["./scripts/demo.sh", "./scripts/test.sh"]
    assert "./scripts/test.sh" in (ROOT / ".ci" / "run").read_text().splitlines()


def _options(parser: object) -> dict[str, list[str]]:
    """Long options of an argparse parser and of each of its subcommands."""
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    found = {"": [s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"]}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = [
                    s for a in sub._actions for s in a.option_strings if s.startswith("--") and s != "--help"
                ]
    return found


def test_cli_reference_names_every_subcommand_and_flag() -> None:
    """docs/cli.md names every gitopsd subcommand and every long flag of each."""
    from gitopsd.cli import build_parser

    text = (ROOT / "docs" / "cli.md").read_text()
    missing = [
        f"gitopsd {sub} {flag}".replace("  ", " ")
        for sub, flags in _options(build_parser()).items()
        for flag in [*flags, *([f"gitopsd {sub}"] if sub else [])]
        if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)
    ]
    assert not missing, f"docs/cli.md does not mention: {missing}"


def test_adapter_reference_names_every_flag_and_queue_field() -> None:
    """docs/metrics-adapter.md names every metrics-adapter flag and every field of a queues entry."""
    from metrics_adapter import cli
    from metrics_adapter.queues import config

    text = (ROOT / "docs" / "metrics-adapter.md").read_text()
    names = [*_options(cli.build_parser())[""]]
    for fields in (config._ENTRY_FIELDS, config._RABBITMQ_FIELDS, config._REDIS_FIELDS, config._SQS_FIELDS):
        names += list(fields)
    missing = [n for n in names if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]
    assert not missing, f"docs/metrics-adapter.md does not mention: {missing}"


def test_environment_reference_names_every_crd_field() -> None:
    """docs/environment.md names every spec and status field of the CRD, and every printer column."""
    import yaml

    crd = yaml.safe_load((ROOT / "manifests" / "gitopsd" / "crd.yaml").read_text())
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    spec, status = schema["spec"]["properties"], schema["status"]["properties"]
    names = [*spec, *spec["source"]["properties"], *status]
    names += [f"{k}" for k in spec["substituteFrom"]["items"]["properties"]]
    text = (ROOT / "docs" / "environment.md").read_text()
    missing = [n for n in names if not re.search(rf"(`{n}\b|\b{n}`|\.{n}\b|\b{n}: )", text)]
    columns = [c["name"].upper() for c in version["additionalPrinterColumns"]]
    missing += [f"column {c}" for c in columns if c not in text]
    assert not missing, f"docs/environment.md does not mention: {missing}"


def test_adapter_config_file_is_in_the_configmap(tmp_path: Path) -> None:
    """The base's ConfigMap holds the config file under config.yaml, as docs/metrics-adapter.md extracts it."""
    import yaml

    from metrics_adapter.rules import config

    configmap = yaml.safe_load((ROOT / "manifests" / "metrics-adapter" / "config.yaml").read_text())
    assert configmap["kind"] == "ConfigMap" and configmap["metadata"]["name"] == "metrics-adapter-config"
    extracted = tmp_path / "config.yaml"
    extracted.write_text(configmap["data"]["config.yaml"])
    loaded = config.load(extracted)
    assert loaded.rules and loaded.queues


if __name__ == "__main__":  # list how each command is classified
    for c in ALL:
        kind = "offline" if is_offline(c) else (e.by if (e := elsewhere(c)) else not_run_reason(c) or "UNACCOUNTED")
        print(f"{c.where}: [{kind}] {c.text}", file=sys.stdout)
