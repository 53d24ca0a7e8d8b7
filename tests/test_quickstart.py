"""The README's quickstart works as written, and the service it starts is
ready at once and fails /ready (not /live) when its database is unreachable."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, git, missing, run, user_env
from tests.support.server import free_port, running, status, wait_for

README = ROOT / "README.md"


def quickstart_commands() -> list[str]:
    section = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.DOTALL)


def docs_in_a_browser(url: str, profile: Path) -> str:
    """The page as headless Chromium renders it, scripts run, with every
    host but this machine unreachable (no CDN, as on a locked-down network)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        missing("Chromium (Debian's chromium package)")
        raise AssertionError("unreachable")
    rendered = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu",
         f"--user-data-dir={profile / 'chromium'}",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    return rendered.stdout


def test_the_quickstart_is_two_commands() -> None:
    commands = quickstart_commands()

    assert len(commands) == 2
    # The second goes back to the template's checkout (the first ends in the
    # new service's folder, whose own `uv run pytest` is not the template's).
    assert commands[1].startswith("cd - && uv run pytest")
    assert "\n" not in commands[0]


@pytest.mark.slow
def test_quickstart_generates_and_starts_a_service(
    template_repo: tuple[Path, str], tmp_path: Path
) -> None:
    """Both commands pasted in order into one shell, as a new user does: the
    first in the checkout, stopped with Ctrl-C once the service is ready;
    the second where the first left the shell."""
    repo, _ = template_repo
    port = free_port()
    env = user_env(SERVER_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    first, second = quickstart_commands()

    log = tmp_path / "quickstart.log"
    with running(first, repo, env, log) as process:
        ready = wait_for(f"{base}/ready", 200, process, log, seconds=600)
        live = status(f"{base}/live")
        docs = docs_in_a_browser(f"{base}/docs", tmp_path)

    assert ready == 200, log.read_text()
    assert live == 200
    # /docs works offline: Swagger UI came from the service, not a CDN.
    assert 'data-path="/api/v1/items/{item_id}"' in docs, docs[-2000:]
    assert 'data-path="/ready"' in docs
    service = repo.parent / "my-service"
    assert (service / "var" / "app.db").is_file()
    # The service can take updates from its first minute.
    # The default name's slug, example-service, in the folder it was given.
    assert git(service, "log", "--format=%s").startswith("Create example-service")
    assert git(service, "status", "--porcelain") == ""
    copier = str(Path(sys.executable).parent / "copier")
    checked = run([copier, "check-update"], service, env)
    assert checked.returncode == 0, checked.output
    assert "up-to-date" in checked.output, checked.output
    # The second command, from where the first left the shell (`cd -` reads
    # OLDPWD): the template's tests, listed rather than run here (this is
    # one of them).
    back_in = dict(env, OLDPWD=str(repo), PYTEST_ADDOPTS="--collect-only -q")
    listed = run(["bash", "-c", second], service, back_in)
    assert listed.returncode == 0, listed.output
    assert "tests/test_quickstart.py::test_the_quickstart_is_two_commands" in (
        listed.output
    )

    # The same service pointed at a closed port: not ready, but alive.
    port = free_port()
    closed = dict(
        env,
        SERVER_PORT=str(port),
        DATABASE_DSN="postgresql+asyncpg://postgres@127.0.0.1:1/none",
    )
    log = tmp_path / "closed-port.log"
    with running("uv run python -m app serve", service, closed, log) as process:
        alive = wait_for(
            f"http://127.0.0.1:{port}/live", 200, process, log, seconds=120
        )
        not_ready = status(f"http://127.0.0.1:{port}/ready")

    assert alive == 200, log.read_text()
    assert not_ready == 503, log.read_text()
