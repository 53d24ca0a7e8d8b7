"""Rendering a kustomize overlay: with a real kustomize where one is
installed, else with a small emulator of the parts the template's overlays use.

The emulator exists because no registry this project installs from ships a
kustomize that reads these overlays: Debian 12's `kubernetes-client` is
kubectl 1.20, whose kustomize (v2) rejects the `patches` and `labels` fields.
Its own tests (tests/test_kustomize_emulator.py) pin what it does, and check
it against a real kustomize where one is installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support import run
from tests.support.manifests import load_all, pod_containers


def kustomize_command() -> list[str] | None:
    """A real kustomize: the standalone binary or kubectl's built-in one."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def build(overlay: Path, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The overlay rendered by a real kustomize, or by the emulator."""
    command = kustomize_command()
    if command is None:
        print(f"no kustomize here: {overlay} assembled by build_without_kustomize")
        return build_without_kustomize(overlay)
    return load_all(run([*command, str(overlay)], overlay, env).check().output)


def build_without_kustomize(overlay: Path) -> list[dict[str, Any]]:
    """Where no kustomize binary exists: the overlay's own resources, the base
    with the overlay's namespace, image, ConfigMap and JSON patches applied.
    Covers only what these overlays use; kustomize itself is preferred."""
    spec = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in spec["resources"]:
        path = (overlay / resource).resolve()
        if path.is_dir():
            base = yaml.safe_load((path / "kustomization.yaml").read_text())
            labels = {
                k: v for entry in base["labels"] for k, v in entry["pairs"].items()
            }
            for name in base["resources"]:
                for doc in load_all((path / name).read_text()):
                    doc["metadata"].setdefault("labels", {}).update(labels)
                    docs.append(doc)
        else:
            docs.extend(load_all(path.read_text()))
    image = spec["images"][0]
    for doc in docs:
        if doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = spec["namespace"]
        for container in pod_containers(doc):
            if container["image"] == image["name"]:
                container["image"] = f"{image['newName']}:{image['newTag']}"
    for patch in spec["patches"]:
        if "path" in patch:
            change = yaml.safe_load((overlay / patch["path"]).read_text())
            for doc in docs:
                if (doc["kind"], doc["metadata"]["name"]) == (
                    change["kind"],
                    change["metadata"]["name"],
                ):
                    doc["data"].update(change["data"])
            continue
        target = patch["target"]
        for doc in docs:
            if (doc["kind"], doc["metadata"]["name"]) != (
                target["kind"],
                target["name"],
            ):
                continue
            for op in yaml.safe_load(patch["patch"]):
                assert op["op"] == "replace", op
                *parents, last = op["path"].strip("/").split("/")
                node: Any = doc
                for part in parents:
                    node = node[int(part)] if isinstance(node, list) else node[part]
                node[int(last) if isinstance(node, list) else last] = op["value"]
    return docs
