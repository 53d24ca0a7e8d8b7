"""The service's image, built by a real engine and run as Kubernetes runs it.

Each answer set below is copied, its own Dockerfile built (only the `# syntax=`
line left out: it asks a registry for the frontend image, and no registry is
reachable here; the engine's built-in BuildKit reads the same syntax), and its
containers started with the user, read-only root, mounts, dropped
capabilities, command and environment names of its `deploy/k8s` manifests, on
the host network against the real PostgreSQL, Redis and RabbitMQ on loopback.
The base images are local stand-ins (tests/support/docker.py).

Measurements (build, image size, start to ready, shutdown) are printed at the
end of the run, under "image measurements".
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support import BROKERS, POSTGRES, REDIS, missing, reachable
from tests.support.docker import (
    Container,
    Engine,
    Manifests,
    Pod,
    Unavailable,
    build,
    claim_volume,
    engine,
    stand_in_bases,
    start,
    unused_port,
)
from tests.support.teams import database

PYTHON = "3.13"  # the one Python Debian trixie has, for the stand-in base
# Both production databases and both brokers, each database with its own
# layout (PostgreSQL: migration Job, API and worker Deployments; SQLite: one
# pod of API and worker on a volume), and both kinds of caller.
IMAGE_SETS: dict[str, dict[str, Any]] = {
    "postgresql-redis": {
        "project_name": "Shop",
        "python_version": PYTHON,
        "production_database": "postgresql",
        "broker": "redis",
        "auth": "jwt",
    },
    "sqlite-rabbitmq": {
        "project_name": "Notes",
        "python_version": PYTHON,
        "production_database": "sqlite",
        "broker": "rabbitmq",
        "auth": "none",
    },
}
# Redis databases per answer set (broker first, if Redis is the broker; then
# REDIS_DSN's), emptied before and after; the template's other tests use 13-15.
REDIS_DATABASES = {"postgresql-redis": (11, 12), "sqlite-rabbitmq": (10,)}
IN_FLIGHT = 6  # requests the server holds when `docker stop` is sent
MEASUREMENT = "image measurements"


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    try:
        with engine() as running:
            yield running
    except Unavailable as error:
        missing(f"a Docker engine ({error})")


def copy(copie: Any, answers: dict[str, Any]) -> Path:
    result = copie.copy(extra_answers=answers)
    assert result.exception is None, result.exception
    project: Path = result.project_dir
    assert (project / "uv.lock").is_file()
    return project


def in_image(running: Engine, image: str, code: str) -> Any:
    """What `code` prints (JSON), run in the image as its user."""
    done = running.docker(
        "run", "--rm", "--network", "none", image, "python", "-c", code
    )
    return json.loads(done.stdout)


CONTENTS = """
import json, os, shutil
found = {
    "user": os.getuid(),
    "tools": sorted(t for t in ("uv", "uvx", "gcc", "cc", "c++", "clang", "make") if shutil.which(t)),
    "present": sorted(p for p in ("/app/tests", "/app/.env", "/app/.git",
                                  "/app/benchmarks", "/app/deploy", "/app/.venv/bin/uv")
                      if os.path.exists(p)),
    "writable": [],
    "files": 0,
}
for top in ("/app/app", "/app/migrations", "/app/.venv"):
    for folder, dirs, files in os.walk(top):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            found["files"] += 1
            if os.access(name, os.W_OK) and not os.path.islink(name):
                found["writable"].append(name)
print(json.dumps(found))
"""


def check_contents(running: Engine, image: str) -> dict[str, Any]:
    found: dict[str, Any] = in_image(running, image, CONTENTS)
    assert found["user"] == 10001
    assert found["tools"] == [], "the runtime stage must not carry build tools"
    assert found["present"] == [], "only what the service runs belongs in the image"
    assert found["files"] > 1000  # the walk saw the code and the environment
    assert found["writable"] == [], "the code must be read-only to the service"
    return found


def image_size(running: Engine, image: str, base: str) -> tuple[int, int]:
    sizes = [
        int(running.docker("image", "inspect", "--format", "{{.Size}}", name).stdout)
        for name in (image, base)
    ]
    return sizes[0], sizes[0] - sizes[1]


@contextmanager
def redis_databases(*numbers: int) -> Iterator[list[str]]:
    """Redis databases of this test's own (by answer set), emptied before
    and after."""
    if not reachable(REDIS):
        missing(f"Redis on {REDIS[0]}:{REDIS[1]}")

    def flush() -> None:
        for number in numbers:
            subprocess.run(
                ["redis-cli", "-h", REDIS[0], "-p", str(REDIS[1]), "-n", str(number),
                 "flushdb"],
                check=True, capture_output=True,
            )  # fmt: skip

    flush()
    try:
        yield [f"redis://{REDIS[0]}:{REDIS[1]}/{number}" for number in numbers]
    finally:
        flush()


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """A RabbitMQ vhost of this test's own, deleted afterwards."""
    address, _ = BROKERS["rabbitmq"]
    if not reachable(address):
        missing(f"RabbitMQ on {address[0]}:{address[1]}")
    vhost = f"image-{uuid.uuid4().hex[:10]}"
    ctl = ["rabbitmqctl", "--quiet"]
    subprocess.run([*ctl, "add_vhost", vhost], check=True, capture_output=True)
    try:
        subprocess.run(
            [*ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield f"amqp://guest:guest@{address[0]}:{address[1]}/{vhost}"  # pragma: allowlist secret
    finally:
        subprocess.run([*ctl, "delete_vhost", vhost], check=False, capture_output=True)


def request(
    port: int, method: str, path: str, token: str | None, body: Any = None
) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": "127.0.0.1", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        connection.close()


def wait_ready(port: int, container: Container, seconds: float = 60) -> float:
    """Seconds from the container's start to /ready answering 200."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if request(port, "GET", "/ready", None)[0] == 200:
                return time.monotonic() - container.started
        except OSError:
            pass
        state = container.state()
        assert state["Running"], f"exited {state['ExitCode']}:\n{container.logs()}"
        time.sleep(0.1)
    raise AssertionError(f"/ready never answered 200:\n{container.logs()}")


def wait_healthy(container: Container, seconds: float = 90) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = container.state().get("Health", {})
        if health.get("Status") in {"healthy", "unhealthy"}:
            return str(health["Status"]) + (
                "" if health["Status"] == "healthy" else f": {health['Log'][-1:]}"
            )
        time.sleep(1)
    return f"still {container.state().get('Health')}"


def wait_for_line(container: Container, text: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while text not in container.logs():
        assert time.monotonic() < deadline, f"no {text!r} in:\n{container.logs()}"
        time.sleep(0.05)


def stop_during_requests(
    container: Container, port: int, token: str | None, grace: int
) -> tuple[float, list[int | str]]:
    """`docker stop` while IN_FLIGHT requests are inside the app: each sends
    its head with `Expect: 100-continue` and waits for the `100 Continue`
    uvicorn sends when the route asks for the body; once the server logs its
    shutdown, the bodies follow. Seconds the stop took, and the answers."""
    bodies = [json.dumps({"name": f"in flight {n}"}).encode() for n in range(IN_FLIGHT)]
    connections = []
    for body in bodies:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = [
            "POST /api/v1/items HTTP/1.1",
            "Host: 127.0.0.1",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Expect: 100-continue",
            *([f"Authorization: Bearer {token}"] if token else []),
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        connections.append(sock)
    for sock in connections:
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = sock.recv(1)
            assert chunk, "the server closed before the request reached the app"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100"), interim
    stopped: dict[str, float] = {}

    def stop() -> None:
        began = time.monotonic()
        container.running.docker(
            "stop", "--time", str(grace), container.name, timeout=grace + 30
        )
        stopped["seconds"] = time.monotonic() - began

    stopper = threading.Thread(target=stop)
    stopper.start()
    wait_for_line(container, "Shutting down")  # SIGTERM reached uvicorn
    answers: list[int | str] = []
    for sock, body in zip(connections, bodies, strict=True):
        try:
            sock.sendall(body)
            response = http.client.HTTPResponse(sock, method="POST")
            response.begin()
            response.read()
            answers.append(response.status)
        except OSError as error:
            answers.append(type(error).__name__)
        finally:
            sock.close()
    stopper.join()
    return stopped["seconds"], answers


def mint_token(running: Engine, image: str, secret_key: str) -> str:
    """A bearer token signed with the deployment's SECRET_KEY, minted by the
    image's own command (development mode only, as its README says)."""
    done = running.docker(
        "run", "--rm", "--network", "none", "--read-only", "--user", "10001:10001",
        "--env", "ENVIRONMENT=development", "--env", f"SECRET_KEY={secret_key}",
        image, "python", "-m", "app", "token", "image-tests",
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1]


def published(port: int, item: int, token: str | None, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        code, body = request(port, "GET", f"/api/v1/items/{item}/publication", token)
        assert code == 200, body
        if body["published_at"] is not None:
            return body
        time.sleep(0.2)
    raise AssertionError(f"the worker never published item {item}: {body}")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(IMAGE_SETS))
def test_the_image_builds_and_runs_as_kubernetes_runs_it(
    name: str,
    docker_engine: Engine,
    copie: Any,
    tmp_path: Path,
    record_property: Any,
) -> None:
    answers = IMAGE_SETS[name]
    if answers["production_database"] == "postgresql" and not reachable(POSTGRES):
        missing("PostgreSQL on 127.0.0.1:5432")
    running = docker_engine
    project = copy(copie, answers)
    tag = f"{name}:test"
    try:
        base, _ = stand_in_bases(running, (project / "Dockerfile").read_text(), PYTHON)
    except Unavailable as error:
        missing(f"the stand-in base images ({error})")
    seconds = build(running, project, tag)
    contents = check_contents(running, tag)
    size, added = image_size(running, tag, base)
    stated = re.search(
        r"adds about (\d+) MB", " ".join((project / "README.md").read_text().split())
    )
    assert stated, "the service README states what the image adds to its base"
    # The README's figure, against this build: within a fifth either way.
    assert abs(int(stated.group(1)) - added / 1e6) < int(stated.group(1)) / 5, added
    measured: dict[str, Any] = {
        "build_s": round(seconds, 1),
        "image_mb": round(size / 1e6),
        "added_mb": round(added / 1e6),
        "files": contents["files"],
    }

    manifests = Manifests.read(project)
    sqlite = answers["production_database"] == "sqlite"
    ports = {
        "SERVER_PORT": unused_port(),
        "METRICS_PORT": unused_port(),
        "WORKER_METRICS_PORT": unused_port(),
    }
    secret_key = secrets.token_urlsafe(40)
    with ExitStack() as stack:
        db = stack.enter_context(
            database(answers["production_database"], tmp_path / "db")
        )
        redis = stack.enter_context(redis_databases(*REDIS_DATABASES[name]))
        broker = (
            redis.pop(0)
            if answers["broker"] == "redis"
            else stack.enter_context(rabbitmq_vhost())
        )
        secret = {
            "SECRET_KEY": secret_key,
            "WORKER_BROKER_DSN": broker,
            "REDIS_DSN": redis[0],
            "OTEL_EXPORTER_OTLP_HEADERS": "",
        }
        if not sqlite:
            secret["DATABASE_DSN"] = db.url
        # Values this machine needs; the names are the manifests' own.
        here = {
            **{key: str(value) for key, value in ports.items()},
            "ALLOWED_HOSTS": "127.0.0.1",
            "SERVER_TRUSTED_PROXIES": "127.0.0.1",
            # No collector here: traces stay off, as without an endpoint.
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        }
        volumes: dict[str, str] = {}
        for claim in [
            d for d in manifests.docs if d["kind"] == "PersistentVolumeClaim"
        ]:
            fs_group = manifests.pod("Deployment", "api").spec["securityContext"][
                "fsGroup"
            ]
            volumes[claim["metadata"]["name"]] = claim_volume(
                running, f"{name}-{claim['metadata']['name']}", tag, fs_group
            )

        def run(pod: Pod, container: str, detach: bool = True) -> Container:
            env = manifests.env(pod, container, secret)
            assert set(here) <= set(env) | {"OTEL_EXPORTER_OTLP_ENDPOINT"}, set(here)
            started = start(
                running, tag, pod, container, {**env, **here}, volumes,
                f"{name}-{container}", detach,
            )  # fmt: skip
            stack.callback(started.remove)  # before the database and broker go
            return started

        if manifests.find("Job", "migrate"):
            job = manifests.pod("Job", "migrate")
            began = time.monotonic()
            run(job, "migrate", detach=False)
            measured["migrate_s"] = round(time.monotonic() - began, 1)
            assert "alembic_version" in db.tables()
        api_pod = manifests.pod("Deployment", "api")
        # The SQLite answer's one pod starts both containers at once; the API
        # migrates the volume's database on start.
        worker_pod = api_pod if sqlite else manifests.pod("Deployment", "worker")
        api = run(api_pod, "api")
        worker = run(worker_pod, "worker")
        measured["ready_s"] = round(wait_ready(ports["SERVER_PORT"], api), 1)
        if sqlite:
            assert "alembic_version" in db_tables_in_volume(running, tag, volumes)

        token = (
            mint_token(running, tag, secret_key) if answers["auth"] == "jwt" else None
        )
        code, item = request(ports["SERVER_PORT"], "POST", "/api/v1/items", token,
                             {"name": "Sent through the API"})  # fmt: skip
        assert code == 201, item
        code, queued = request(ports["SERVER_PORT"], "POST",
                               f"/api/v1/items/{item['id']}/publish", token)  # fmt: skip
        assert code == 202, queued
        done = published(ports["SERVER_PORT"], item["id"], token)
        assert done["publish_count"] == 1
        assert queued["message_id"] in worker.logs()
        # The worker's probes, as the kubelet runs them: liveness in the
        # container (read-only root), readiness on its metrics port.
        liveness = worker_pod.container("worker")["livenessProbe"]["exec"]["command"]
        probed = worker.run(*liveness)
        assert probed.returncode == 0, probed.stdout + probed.stderr
        socket.create_connection(("127.0.0.1", ports["WORKER_METRICS_PORT"]), 5).close()

        assert wait_healthy(api) == "healthy"

        grace = api_pod.grace_seconds
        stop_s, in_flight = stop_during_requests(
            api, ports["SERVER_PORT"], token, grace
        )
        assert in_flight == [201] * IN_FLIGHT, api.logs()
        assert api.state()["ExitCode"] == 0, api.logs()
        # Kubernetes pauses for preStop before SIGTERM, within the same grace.
        assert api_pod.pre_stop_seconds("api") + stop_s < grace
        began = time.monotonic()
        worker.running.docker(
            "stop", "--time", str(worker_pod.grace_seconds), worker.name
        )
        worker_stop_s = time.monotonic() - began
        assert worker.state()["ExitCode"] == 0, worker.logs()
        assert worker_stop_s < worker_pod.grace_seconds
        measured |= {
            "stop_s": round(stop_s, 1),
            "worker_stop_s": round(worker_stop_s, 1),
        }
    record_property(MEASUREMENT, {"answers": name, **measured})


def db_tables_in_volume(running: Engine, image: str, volumes: dict[str, str]) -> str:
    """The tables of the SQLite file on the claim (read in a throwaway
    container: the file is the volume's, not this machine's)."""
    (volume,) = volumes.values()
    code = (
        "import glob, sqlite3; [path] = glob.glob('/data/*.db');"
        " print(sqlite3.connect(path).execute("
        "\"select group_concat(name) from sqlite_master where type='table'\").fetchone()[0])"
    )
    done = running.docker(
        "run", "--rm", "--network", "none", "--no-healthcheck", "--read-only",
        "--mount", f"type=volume,src={volume},dst=/data,readonly", image,
        "python", "-c", code,
    )  # fmt: skip
    return done.stdout
