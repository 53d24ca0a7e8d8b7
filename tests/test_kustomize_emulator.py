"""The kustomize emulator (tests/support/kustomize.py), which renders the
service's overlays where no kustomize is installed, pinned on a small
kustomization (tests/fixtures/kustomize/) that uses what those overlays use.

`staging.yaml` there is kustomize's own output: the emulator must give the
same objects, and a real kustomize, where one is installed, must still give
them too, so the pinned output stays kustomize's and not the emulator's.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, run, tool_env
from tests.support.kustomize import build, build_without_kustomize, kustomize_command
from tests.support.manifests import load_all

FIXTURES = ROOT / "tests" / "fixtures" / "kustomize"
OVERLAY = FIXTURES / "overlays" / "staging"


def by_object(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Objects in a stable order: kustomize and the emulator order them
    differently, which no consumer of the output depends on."""
    return sorted(docs, key=lambda doc: (doc["kind"], doc["metadata"]["name"]))


def kustomized() -> list[dict[str, Any]]:
    return by_object(load_all((FIXTURES / "staging.yaml").read_text()))


def test_the_emulator_renders_what_kustomize_rendered() -> None:
    assert by_object(build_without_kustomize(OVERLAY)) == kustomized()


def test_a_real_kustomize_still_renders_the_pinned_output() -> None:
    command = kustomize_command()
    if command is None:
        pytest.skip("no kustomize or kubectl here")

    output = run([*command, str(OVERLAY)], FIXTURES, tool_env()).check().output

    assert by_object(load_all(output)) == kustomized()


def test_without_kustomize_on_the_path_the_overlay_is_emulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither kustomize nor kubectl

    assert kustomize_command() is None
    assert by_object(build(OVERLAY, tool_env())) == kustomized()


def test_the_emulator_refuses_a_json_patch_it_does_not_know(tmp_path: Path) -> None:
    """Only `replace` is emulated: a patch that adds or removes must fail
    here, not render as if it had not been there."""
    copy = shutil.copytree(FIXTURES, tmp_path / "kustomize")
    kustomization = copy / "overlays" / "staging" / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace("op: replace", "op: add", 1)
    )

    with pytest.raises(AssertionError, match="'op': 'add'"):
        build_without_kustomize(copy / "overlays" / "staging")
