"""Bad input, ordering side: waves, hooks and delete policies gitopsd cannot read are refused by the
render, naming the file, the object and the annotation; so the release is never recorded nor applied."""

from __future__ import annotations

import pytest

from gitopsd.render import InvalidManifest, KustomizeError, OfflineScopes, render
from tests.gitopsd.render.trees import MemoryTree, options

JOB = """\
apiVersion: batch/v1
kind: Job
metadata:
  {identity}
  annotations: {{{annotations}}}
spec: {{template: {{spec: {{restartPolicy: Never, containers: [{{name: run, image: tool:1}}]}}}}}}
"""


def job(annotations: str, identity: str = "name: migrate") -> dict[str, str | bytes]:
    return {"deploy/migrate.yaml": JOB.format(identity=identity, annotations=annotations)}


@pytest.mark.parametrize(
    ("files", "words"),
    [
        (job('argocd.argoproj.io/sync-wave: "one"'), "argocd.argoproj.io/sync-wave: 'one' is not an integer"),
        (job('gitopsd.dev/sync-wave: "2.5"'), "annotation gitopsd.dev/sync-wave: '2.5' is not an integer"),
        (job("argocd.argoproj.io/hook: Presync"), "annotation argocd.argoproj.io/hook: unknown hook 'Presync'"),
        (job("helm.sh/hook: pre-instal"), "annotation helm.sh/hook: unknown hook 'pre-instal'"),
        (
            job("helm.sh/hook: pre-install, helm.sh/hook-delete-policy: HookSucceeded"),
            "annotation helm.sh/hook-delete-policy: unknown policy 'HookSucceeded'",
        ),
        (job("", identity="generateName: migrate-"), "has metadata.generateName but no metadata.name"),
    ],
)
def test_bad_ordering_annotations_are_refused_by_file(files: dict[str, str | bytes], words: str) -> None:
    """Each: InvalidManifest, not transient (Stalled), naming deploy/migrate.yaml and the annotation."""
    with pytest.raises(InvalidManifest) as err:
        render(MemoryTree(files), options(), OfflineScopes())
    assert str(err.value).startswith("deploy/migrate.yaml"), str(err.value)
    assert words in str(err.value) and not err.value.transient, str(err.value)


def test_a_hook_with_generate_name_renders_from_a_directory_not_through_kustomize() -> None:
    """generateName is accepted on a hook of a plain directory (target namespace given); kustomize itself
    refuses an object without metadata.name, and the error says so (docs/ordering.md: name such hooks)."""
    hook = job("argocd.argoproj.io/hook: PreSync", identity="generateName: migrate-")
    [manifest] = render(MemoryTree(hook), options(), OfflineScopes())
    assert manifest.obj["metadata"]["generateName"] == "migrate-"
    assert manifest.obj["metadata"]["namespace"] == "shop" and "name" not in manifest.obj["metadata"]
    kustomized = MemoryTree({**hook, "deploy/kustomization.yaml": "resources: [migrate.yaml]\n"})
    with pytest.raises(KustomizeError, match=r"missing metadata\.name"):
        render(kustomized, options(), OfflineScopes())
