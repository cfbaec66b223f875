"""The six acts of the demo, in order, each ending with one ``[ok]`` line that says what it proved.

Each act changes something the way a user would (``git push``, ``redis-cli``, traffic) and
then waits, bounded, for the cluster to show the outcome, read from the objects themselves
(Environment status, HPA status); the commands shown along the way are for the reader.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from e2e.demo import shop
from e2e.demo.load import Load
from e2e.demo.narrate import DemoError, Narrator, one_item_per_line
from e2e.demo.stack import Stack

DEPLOY_TIMEOUT = 90.0  # a push to a Healthy release takes seconds; polling (30 s) is the fallback
HPA_TIMEOUT = 120.0
PROD_NS = shop.TARGETS["prod"]


@dataclass
class Story:
    stack: Stack
    say: Narrator
    load: Load | None = None
    hpa_shown: tuple[int, int] = (0, 0)  # (current, desired) replicas last shown with `kubectl get hpa`

    def __post_init__(self) -> None:
        self.api = self.stack.api()

    # -- reading the cluster ---------------------------------------------------------------

    def status(self, env: str) -> dict[str, Any]:
        obj = self.api.get(f"/apis/gitopsd.dev/v1alpha1/namespaces/{shop.NAMESPACE}/environments/{env}") or {}
        result: dict[str, Any] = obj.get("status") or {}
        return result

    @staticmethod
    def ready(st: dict[str, Any]) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])

    def deployed(self, env: str, revision: str, *, since: float) -> dict[str, Any]:
        """Wait until ``env`` is Ready at ``revision``; say how long after ``since`` (a push) it took."""

        st = self._settled(env, revision)
        self.say.ok(
            f"{env} runs {short(revision)} (release {st.get('release')}, Healthy), "
            f"{time.monotonic() - since:.1f} s after the push"
        )
        return st

    def _settled(self, env: str, revision: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.status(env)
            return st if self.ready(st) and st.get("lastAppliedRevision") == revision else None

        return self.say.wait(f"{env} to be Ready at {revision}", check, timeout=DEPLOY_TIMEOUT)

    def head(self) -> str:
        return self.say.quiet("git rev-parse HEAD")

    def hpa(self) -> dict[str, Any]:
        """The HPA's status (empty until it exists)."""
        obj = self.api.get(f"/apis/autoscaling/v2/namespaces/{PROD_NS}/horizontalpodautoscalers/{shop.APP}") or {}
        result: dict[str, Any] = obj.get("status") or {}
        return result

    # -- the acts ----------------------------------------------------------------------------

    def run(self) -> None:
        self.environments()
        self.staging()
        self.prod()
        self.bad_release()
        self.fixed_release()
        self.autoscaling_act()

    def environments(self) -> None:
        say = self.say
        say.begin("1. Environments: dev follows develop, staging follows main, prod the release tags")
        say.say(
            "Three Environments read the same repository. Each follows a ref and deploys its own overlay; "
            "prod takes the newest release tag and has a 15 s health gate with automatic rollback."
        )
        envs = self.stack.directory / "environments.yaml"
        assert self.stack.repo is not None
        envs.write_text(shop.environments(self.stack.repo.file_url))
        say.run(f"cat {envs}")
        say.run(f"kubectl apply --server-side -f {envs}")
        first = self.head()
        now = time.monotonic()
        for env, branch in (("dev", "develop"), ("staging", "main")):
            self._settled(env, f"{branch}@sha1:{first}")
        say.ok(f"dev and staging run the first commit ({time.monotonic() - now:.1f} s); prod waits for a release tag")
        say.run("gitopsd get")

        say.say("A developer pushes web 1.0.0 to develop. The repository's post-receive hook runs `gitopsd notify`, ")
        say.say("so dev deploys at once (without the hook, on its next 30 s poll).")
        say.run("git switch develop")
        say.run("sed -i 's|web:0.9.0|web:1.0.0|' deploy/base/web.yaml")
        say.run("git commit -am 'web 1.0.0: new checkout page'")
        pushed = time.monotonic()
        say.run("git push origin develop")
        self.deployed("dev", f"develop@sha1:{self.head()}", since=pushed)
        say.run("kubectl get deployment web -n shop-dev -o wide")
        say.done("a push to develop deployed web 1.0.0 to dev")

    def staging(self) -> None:
        say = self.say
        say.begin("2. A merge to main reaches staging")
        say.run("git switch main")
        say.run("git merge --no-ff develop -m 'Merge develop: web 1.0.0'")
        pushed = time.monotonic()
        say.run("git push origin main")
        self.deployed("staging", f"main@sha1:{self.head()}", since=pushed)
        say.run("kubectl get deployment web -n shop-staging -o wide")
        say.done("the merge to main deployed web 1.0.0 to staging")

    def prod(self) -> None:
        say = self.say
        say.begin("3. A release tag reaches prod")
        say.run("git tag -a v1.0.0 -m 'web 1.0.0'")
        pushed = time.monotonic()
        say.run("git push origin v1.0.0")
        self.deployed("prod", f"v1.0.0@sha1:{self.head()}", since=pushed)
        say.run("gitopsd get")
        say.done("tag v1.0.0 deployed web 1.0.0 to prod (release 1)")

    def bad_release(self) -> None:
        say = self.say
        say.begin("4. A bad release fails its health check in prod, is rolled back automatically and held")
        say.say(
            "web 1.1.0 also changes prod's overlay: it points CHECKOUT_URL at checkout-v2, which prod does not have "
            "yet, so the new pods never pass their readiness probe. (kwok pods run no code: on this cluster the "
            f"pod label {shop.NEVER_READY} stands in for the failing probe.) dev and staging are fine."
        )
        say.run("git switch develop")
        say.run("sed -i 's|web:1.0.0|web:1.1.0|' deploy/base/web.yaml")
        self._write(shop.prod_settings(broken=True))
        say.run("cat deploy/overlays/prod/web-prod.yaml")
        say.run("git add -A && git commit -m 'web 1.1.0: checkout v2'")
        say.run("git switch main && git merge --no-ff develop -m 'Merge develop: web 1.1.0'")
        say.run("git tag -a v1.1.0 -m 'web 1.1.0'")
        good = self.status("prod")
        pushed = time.monotonic()
        say.run("git push origin develop main v1.1.0")
        bad_rev = f"v1.1.0@sha1:{self.head()}"
        bad_release = int(good["release"]) + 1

        def deploying() -> dict[str, Any] | None:
            st = self.status("prod")
            started = st.get("lastAttemptedRevision") == bad_rev and int(st.get("release", 0)) >= bad_release
            return st if started else None

        say.wait("prod to start deploying v1.1.0", deploying, timeout=DEPLOY_TIMEOUT)
        self._wait_unready_pod()
        say.say(f"prod applied v1.1.0 as release {bad_release}; its new pod does not turn Ready (the old one serves):")
        say.run(f"kubectl get pods -n {PROD_NS}")

        def rolled_back() -> dict[str, Any] | None:
            st = self.status("prod")
            held = st.get("held") or {}
            ok = held.get("revision") == bad_rev and st.get("lastAppliedRevision") == good["lastAppliedRevision"]
            return st if ok and self.ready(st) else None

        st = say.wait("the automatic rollback", rolled_back, timeout=shop.PROD_WAIT + DEPLOY_TIMEOUT)
        say.ok(
            f"v1.1.0 failed prod's health gate; rolled back to {short(good['lastAppliedRevision'])} as release "
            f"{st['release']}, {time.monotonic() - pushed:.1f} s after the push; v1.1.0 is held"
        )
        say.run("gitopsd get")
        say.run("gitopsd history prod")
        say.run(f"kubectl get events -n {shop.NAMESPACE} --field-selector reason=RolledBack")
        say.say("Held: the daemon keeps release " + str(st["release"]) + " up and will not retry v1.1.0; a new tag "
                "(or `gitopsd resume prod`) lifts the hold.")  # fmt: skip
        say.done(f"v1.1.0 rolled back automatically (release {bad_release} → {st['release']}) and held")

    def fixed_release(self) -> None:
        say = self.say
        say.begin("5. A fixed tag deploys")
        say.run("git switch develop")
        self._write(shop.prod_settings(broken=False))
        say.run("git diff")
        say.run("git commit -am 'prod: CHECKOUT_URL back to checkout until checkout-v2 ships'")
        say.run("git switch main && git merge --no-ff develop -m 'Merge develop: web 1.1.1'")
        say.run("git tag -a v1.1.1 -m 'web 1.1.1'")
        pushed = time.monotonic()
        say.run("git push origin develop main v1.1.1")
        st = self.deployed("prod", f"v1.1.1@sha1:{self.head()}", since=pushed)
        if st.get("held"):
            raise DemoError(f"prod deployed v1.1.1 but still holds {st['held']}")
        say.run("gitopsd get")
        say.run("gitopsd history prod")
        say.done(f"tag v1.1.1 deployed to prod (release {st['release']}); the hold on v1.1.0 is gone")

    def autoscaling_act(self) -> None:
        say = self.say
        say.begin("6. An HPA scales prod's web on a request rate and a queue length at once")
        say.say(
            "prod's overlay has carried this HPA since v1.0.0. The request rate comes from the app's "
            "demo_http_requests_total counter in Prometheus (custom metrics API); the queue length is the "
            "Redis list `jobs` (external metrics API). Both reach the HPA through metrics-adapter."
        )
        say.run("cat deploy/overlays/prod/hpa.yaml")
        st = self._wait_hpa("the HPA to read both metrics", lambda h: _current(h, "Object") is not None
                            and _current(h, "External") is not None)  # fmt: skip
        self.hpa_shown = (st.get("currentReplicas", 0), st.get("desiredReplicas", 0))
        say.run(f"kubectl get hpa -n {PROD_NS}")

        assert self.stack.redis is not None
        rate, queued = 35, 28
        self.load = Load(self.stack.app_url).start()
        self.load.rps = rate
        say.say(
            f"Traffic rises to {rate} requests/s (a load generator in the demo sends them to the app): "
            f"at {shop.REQUEST_TARGET} per pod that asks for {-(-rate // shop.REQUEST_TARGET)} pods."
        )
        by_rate = -(-rate // shop.REQUEST_TARGET)
        self._watch_hpa(by_rate, "Object")
        by_queue = -(-queued // shop.QUEUE_TARGET)
        say.say(f"Now {queued} jobs land in the queue: at {shop.QUEUE_TARGET} per pod that asks for {by_queue} pods, "
                "more than the request rate does.")  # fmt: skip
        port = self.stack.redis.port
        say.run(f"redis-cli -p {port} RPUSH {shop.QUEUE} $(seq -f 'job-%g' {queued})")
        self._watch_hpa(by_queue, "External")
        say.say("What the HPA reads, through kube-apiserver and the aggregator (JSON shown one item per line):")
        say.run(
            f"kubectl get --raw '/apis/custom.metrics.k8s.io/v1beta2/namespaces/{PROD_NS}/services/{shop.APP}/"
            f"{shop.REQUEST_METRIC}'",
            render=one_item_per_line,
        )
        say.run(
            f"kubectl get --raw '/apis/external.metrics.k8s.io/v1beta1/namespaces/{PROD_NS}/{shop.QUEUE_METRIC}'",
            render=one_item_per_line,
        )
        say.ok(f"web scaled 1 → {by_rate} on the request rate and {by_rate} → {by_queue} on the queue length")

        say.say("Both fall: traffic stops and the workers drain the queue. The HPA waits out its 15 s "
                "scale-down stabilization window, then shrinks web.")  # fmt: skip
        self.load.rps = 0
        say.run(f"redis-cli -p {port} DEL {shop.QUEUE}")
        self._watch_hpa(1, None)
        say.done(
            f"the HPA scaled web 1 → {by_rate} (request rate) → {by_queue} (queue length) and back to 1 when both fell"
        )

    # -- helpers -------------------------------------------------------------------------------

    def _write(self, files: dict[str, str]) -> None:
        assert self.stack.repo is not None
        for name, text in files.items():
            path = self.stack.repo.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def _wait_unready_pod(self) -> None:
        selector = urllib.parse.urlencode({"labelSelector": f"{shop.NEVER_READY}=true"})

        def check() -> bool:
            pods = (self.api.get(f"/api/v1/namespaces/{PROD_NS}/pods?{selector}") or {}).get("items") or []
            return any((p.get("status") or {}).get("phase") == "Running" for p in pods)

        self.say.wait("v1.1.0's pod to be running (un-Ready)", check, timeout=shop.PROD_WAIT)

    def _wait_hpa(self, what: str, accept: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.hpa()
            return st if accept(st) else None

        return self.say.wait(what, check, timeout=HPA_TIMEOUT)

    def _watch_hpa(self, replicas: int, driver: str | None) -> None:
        """Show `kubectl get hpa` whenever the replica count moves, until it settles at ``replicas``."""
        started = time.monotonic()
        deadline = started + HPA_TIMEOUT
        while True:
            st = self.hpa()
            now = (st.get("currentReplicas", 0), st.get("desiredReplicas", 0))
            if now != self.hpa_shown:
                self.hpa_shown = now
                self.say.run(f"kubectl get hpa -n {PROD_NS}")
            settled = now == (replicas, replicas)
            if settled and (driver is None or _proposes(st, driver) >= replicas):
                break
            if time.monotonic() > deadline:
                raise DemoError(
                    f"timed out after {HPA_TIMEOUT:.0f} s waiting for the HPA to settle at {replicas} replicas "
                    f"(now {now[0]}, desired {now[1]}, metrics {st.get('currentMetrics')})"
                )
            time.sleep(1)
        took = time.monotonic() - started
        if driver is None:
            self.say.ok(f"with both metrics down, the HPA scaled web back to {replicas} ({took:.0f} s)")
        else:
            by = {"Object": "the request rate", "External": "the queue length"}[driver]
            self.say.ok(f"the HPA scaled web to {replicas} on {by} ({took:.0f} s)")


def short(revision: str) -> str:
    """``v1.0.0@sha1:0123456789ab...`` → ``v1.0.0@0123456``."""
    ref, _, sha = revision.partition("@")
    return f"{ref}@{sha.removeprefix('sha1:')[:7]}"


def _current(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The current value of the HPA's metric of ``kind`` (Object, External), if it has read one."""
    for metric in status.get("currentMetrics") or []:
        if metric.get("type") == kind:
            current: dict[str, Any] | None = (metric.get(kind[0].lower() + kind[1:]) or {}).get("current")
            return current
    return None


def _proposes(status: dict[str, Any], kind: str) -> int:
    """How many replicas one metric asks for: its per-pod average over the target, times the replicas now."""
    current = _current(status, kind)
    if current is None or "averageValue" not in current:
        return 0
    target = shop.REQUEST_TARGET if kind == "Object" else shop.QUEUE_TARGET
    replicas = int(status.get("currentReplicas", 0))
    return math.ceil(round(_quantity(str(current["averageValue"])) * replicas / target, 3))


def _quantity(text: str) -> float:
    """A Kubernetes quantity as the HPA reports averages (``6666m``, ``5``, ``1500u``...)."""
    suffixes = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
    if text and text[-1] in suffixes:
        return float(text[:-1]) * suffixes[text[-1]]
    return float(text)
