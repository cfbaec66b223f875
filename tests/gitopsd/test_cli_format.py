"""Unit tests for the CLI's table and age formatting (gitopsd/cli/common.py, cli/get.py)."""

from __future__ import annotations

import calendar
import time

from gitopsd.cli.common import age, table
from gitopsd.cli.get import rows


def test_age_like_kubectl() -> None:
    """Ages print as kubectl does: seconds, minutes, hours, days."""
    now = calendar.timegm(time.strptime("2026-11-22T12:00:00Z", "%Y-%m-%dT%H:%M:%SZ"))
    assert age("2026-11-22T11:59:15Z", now) == "45s"
    assert age("2026-11-22T11:48:00Z", now) == "12m"
    assert age("2026-11-22T07:00:00Z", now) == "5h"
    assert age("2026-11-19T12:00:00Z", now) == "3d"
    assert age(None, now) == "<unknown>"


def test_get_rows_show_short_revision_and_ready_message() -> None:
    """The table shows the short sha, the release, the held revision and Ready's message."""
    item = {
        "metadata": {"name": "prod", "namespace": "ops", "creationTimestamp": "2026-11-22T11:00:00Z"},
        "spec": {"source": {"url": "https://h/r.git", "tag": "v1.2.0"}},
        "status": {
            "lastAppliedRevision": "v1.2.0@sha1:" + "a" * 40,
            "release": 7,
            "held": {"revision": "v1.3.0@sha1:" + "b" * 40},
            "conditions": [{"type": "Ready", "status": "True", "message": "Applied revision: v1.2.0"}],
        },
    }
    header, row = rows([item], all_namespaces=True)
    assert header == [
        "NAMESPACE", "NAME", "READY", "VERIFIED", "REVISION", "RELEASE", "HELD", "CLUSTER", "AGE", "STATUS"
    ]  # fmt: skip
    assert row[:8] == ["ops", "prod", "True", "", "v1.2.0@sha1:aaaaaaa", "7", "v1.3.0@sha1:bbbbbbb", "in-cluster"]
    assert row[9] == "Applied revision: v1.2.0"
    wide = rows([item], wide=True)[1]
    assert "tag:v1.2.0" in wide and "v1.2.0@sha1:" + "a" * 40 in wide


def test_get_rows_show_the_cluster_an_environment_deploys_into() -> None:
    """CLUSTER: status.cluster once written, else the kubeconfig Secret's name from the spec, else in-cluster."""
    base = {"metadata": {"name": "prod", "namespace": "ops"}}
    remote = {**base, "spec": {"kubeConfig": {"secretRef": {"name": "eu-west"}}}, "status": {}}
    written = {**remote, "status": {"cluster": "eu-west"}}
    local = {**base, "spec": {}, "status": {"cluster": "in-cluster"}}
    header, *body = rows([remote, written, local, {**base, "spec": {}}])
    column = header.index("CLUSTER")
    assert [row[column] for row in body] == ["eu-west", "eu-west", "in-cluster", "in-cluster"]
    wide = rows([remote], wide=True)
    assert wide[1][wide[0].index("CLUSTER")] == "eu-west"


def test_table_aligns_columns() -> None:
    """Columns are padded to the widest cell, three spaces apart."""
    assert table([["A", "BB"], ["CCC", "D"]]) == "A     BB\nCCC   D"
