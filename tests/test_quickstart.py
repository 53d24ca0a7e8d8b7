"""The README's quickstart works as written, and the service it starts is
ready at once and fails /ready (not /live) when its database is unreachable."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support import ROOT, interpreter, tool_env

README = ROOT / "README.md"


def quickstart_commands() -> list[str]:
    section = README.read_text().split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.DOTALL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            code: int = response.status
            return code
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


@contextmanager
def running(
    command: str, cwd: Path, env: Mapping[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, shell=True, cwd=cwd, env=dict(env), stdout=output,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def wait_for(
    url: str, expected: int, process: subprocess.Popen[bytes], log: Path, seconds: float
) -> int | None:
    deadline = time.monotonic() + seconds
    code = None
    while time.monotonic() < deadline:
        code = status(url)
        if code == expected:
            return code
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)
    return code


def test_the_quickstart_is_two_commands() -> None:
    commands = quickstart_commands()

    assert len(commands) == 2
    assert commands[1] == "uv run pytest"
    assert "\n" not in commands[0]


@pytest.mark.slow
def test_quickstart_generates_and_starts_a_service(
    template_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, _ = template_repo
    port = free_port()
    env = tool_env(interpreter("3.12"), SERVER_PORT=str(port))
    base = f"http://127.0.0.1:{port}"

    log = tmp_path / "quickstart.log"
    with running(quickstart_commands()[0], repo, env, log) as process:
        ready = wait_for(f"{base}/ready", 200, process, log, seconds=600)
        live = status(f"{base}/live")

    assert ready == 200, log.read_text()
    assert live == 200
    service = repo.parent / "my-service"
    assert (service / "var" / "app.db").is_file()

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
