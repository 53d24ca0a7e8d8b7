"""Reading Kubernetes manifests: YAML streams and the pods in workloads."""

from __future__ import annotations

from typing import Any

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}


def load_all(text: str) -> list[dict[str, Any]]:
    """The documents of a YAML stream, empty ones left out."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] not in WORKLOADS:
        return None
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    return [] if spec is None else list(spec["containers"])
