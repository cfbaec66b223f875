"""How the demo talks: headings, a few lines of explanation, and real commands with their real output.

A command is shown as a user would type it (``$ git push origin develop``) and run exactly as
shown, through ``sh -c`` in the demo's shell environment (``KUBECONFIG`` exported, the venv's
``gitopsd`` on ``PATH``, the Git clone as working directory), so what is printed is what a
user who copies it gets. Waits are bounded and say what they wait for.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
WIDTH = 100


class DemoError(RuntimeError):
    """A step of the demo did not do what it should; the message says which and what was seen."""


@dataclass(slots=True)
class Act:
    title: str
    seconds: float
    result: str


@dataclass(slots=True)
class Narrator:
    cwd: Path
    env: Mapping[str, str]
    acts: list[Act] = field(default_factory=list)
    _act_title: str = ""
    _act_started: float = 0.0

    # -- text --------------------------------------------------------------------------------

    def out(self, text: str = "") -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def heading(self, title: str) -> None:
        self.out()
        self.out(f"=== {title} " + "=" * max(3, WIDTH - len(title) - 5))

    def say(self, text: str) -> None:
        """Explanation, wrapped; shown as shell comments so a pasted transcript still runs."""
        for line in textwrap.wrap(" ".join(text.split()), WIDTH - 2):
            self.out(f"# {line}")

    def ok(self, text: str) -> None:
        self.out(f"[ok] {text}")

    # -- acts ----------------------------------------------------------------------------------

    def begin(self, title: str) -> None:
        self.heading(title)
        self._act_title, self._act_started = title, time.monotonic()

    def done(self, result: str) -> None:
        self.ok(result)
        self.acts.append(Act(self._act_title, time.monotonic() - self._act_started, result))

    # -- commands ------------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        check: bool = True,
        show_output: bool = True,
        render: Callable[[str], str] | None = None,
        timeout: float = 60,
    ) -> str:
        """Show ``$ command``, run it, show its output (stdout and stderr, interleaved); return it."""
        self.out(f"$ {command}")
        try:
            proc = subprocess.run(
                ["sh", "-c", command],
                cwd=self.cwd,
                env=dict(self.env),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise DemoError(f"`{command}` did not finish within {timeout:.0f} s") from exc
        # git pads its "remote:" lines with spaces to erase progress output; drop trailing blanks.
        output = "\n".join(line.rstrip() for line in proc.stdout.rstrip("\n").splitlines())
        if show_output and output:
            self.out(render(output) if render and proc.returncode == 0 else output)
        if check and proc.returncode != 0:
            raise DemoError(f"`{command}` failed (exit {proc.returncode}): {output[-2000:]}")
        return output

    def quiet(self, command: str, timeout: float = 60) -> str:
        """Run ``command`` without showing it (set-up the story does not need to explain)."""
        proc = subprocess.run(
            ["sh", "-c", command], cwd=self.cwd, env=dict(self.env), capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise DemoError(f"`{command}` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}")
        return proc.stdout.strip()

    def wait(self, what: str, check: Callable[[], T | None], *, timeout: float, interval: float = 0.5) -> T:
        """Poll ``check`` until it returns something truthy; a timeout is a DemoError naming ``what``."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while True:
            try:
                result = check()
                if result:
                    return result
                last = None
            except DemoError:
                raise
            except Exception as exc:  # the API or a service answering late: keep polling, report at the end
                last = exc
            if time.monotonic() >= deadline:
                detail = f" (last error: {last})" if last else ""
                raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
            time.sleep(interval)


def one_item_per_line(raw: str) -> str:
    """A metrics API answer (one long JSON line from ``kubectl get --raw``), one item per line."""
    try:
        doc: Any = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        return raw
    head = {k: v for k, v in doc.items() if k != "items"}
    compact = json.dumps(head, separators=(",", ":"))[:-1]
    lines = [compact + ',"items":[']
    items = [json.dumps(i, separators=(",", ":")) for i in doc["items"]]
    lines += [f"  {item}," for item in items[:-1]] + ([f"  {items[-1]}"] if items else [])
    lines.append("]}")
    return "\n".join(lines)
