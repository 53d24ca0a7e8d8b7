"""Renovate itself (npm `renovate`, its local platform) finds a new template
release for a service made from the template's git URL, as its copier
manager does for every service on a schedule.

The local platform only looks up (`--dry-run=lookup`): it reports each
dependency it found and the newer version, and opens nothing. Renovate is
installed from tools/renovate/package-lock.json into a cache folder outside
the checkout, once per locked version.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from tests.support import ROOT, committed_copy, missing, run, tool_env
from tests.support.template_repo import recorded_releases

LOCKED = ROOT / "tools" / "renovate"


def renovate() -> Path:
    """The locked Renovate's executable, installed on first use."""
    npm = shutil.which("npm")
    if npm is None:
        missing("npm (Node.js)")
    lock = (LOCKED / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    folder = (
        cache
        / "prodstarter-fastapi"
        / f"renovate-{hashlib.sha256(lock).hexdigest()[:12]}"
    )
    executable = folder / "node_modules" / ".bin" / "renovate"
    if not executable.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(LOCKED / name, folder / name)
        run(
            [str(npm), "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            folder,
            tool_env(),
            timeout=1200,
        ).check()
    return executable


@pytest.mark.slow
def test_renovate_finds_the_next_release_of_a_service_made_from_a_git_url(
    template_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, next_tag = template_repo
    newest = recorded_releases()[-1]
    source = f"file://{repo}/.git"
    service = committed_copy(source, newest.tag, tmp_path / "service", "--skip-tasks")

    looked_up = run(
        # Only the copier manager: the others would ask registries this
        # machine cannot reach (Docker Hub, GitHub) and stop the run.
        [str(renovate()), "--platform=local", "--dry-run=lookup",
         "--onboarding=false", "--enabled-managers=copier"],
        service,
        tool_env(LOG_LEVEL="debug", RENOVATE_BASE_DIR=str(tmp_path / "renovate")),
    ).check()  # fmt: skip

    output = looked_up.output
    assert '"copier": [' in output, output[-3000:]
    assert f'"depName": "{source}"' in output, output[-3000:]
    assert f'"currentValue": "{newest.tag}"' in output, output[-3000:]
    assert f'"newValue": "{next_tag}"' in output, output[-3000:]
