"""A Docker engine of the test run's own, the base images a service's
Dockerfile names, and containers run the way its Kubernetes manifests run them.

No registry but the package registries is reachable here, so the images named
in `FROM` are made locally under the same names (stand-ins):

- `python:<version>-slim-trixie`: a Debian trixie root file system from
  `debootstrap --variant=minbase` with Debian's `python<version>`, linked into
  `/usr/local/bin` where the official image has its interpreter, carrying this
  machine's certificate bundle so that the build stage reaches PyPI;
- `ghcr.io/astral-sh/uv:<version>`: the `uv` and `uvx` binaries of uv's wheel
  on PyPI (the same binaries the image is made of), at the image's root as
  in the real one.

The root file systems are cached in ~/.cache (about 50 s to make each); the
engine, its images and its build cache live and die with the test session.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import socket as socketlib
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.template_code import locked

CACHE = Path.home() / ".cache" / "prodstarter-fastapi" / "docker"
# Debian's client: the newer client first on PATH here wants buildx for
# BuildKit, which Debian's engine has built in.
DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
SUITE = "trixie"
CERTIFICATES = Path("/etc/ssl/certs/ca-certificates.crt")
PYTHON_BASE = re.compile(r"^FROM python:\$\{PYTHON_VERSION\}-slim-(\w+)", re.M)
UV_IMAGE = re.compile(r"^FROM ghcr\.io/astral-sh/uv:(\S+)", re.M)
# The one line a build here leaves out: it asks a registry for the frontend
# image (docker/dockerfile), and no registry is reachable. The engine's
# built-in BuildKit frontend reads the same syntax (cache and bind mounts).
SYNTAX_LINE = re.compile(r"^# syntax=.*\n", re.M)


class Unavailable(Exception):
    """The engine cannot be installed or started on this machine."""


def install_engine() -> None:
    """Debian's engine (docker.io) and debootstrap, when either is missing."""
    wanted = sorted({
        package
        for tool, package in (
            (DOCKERD, "docker.io"), (DOCKER, "docker.io"),
            ("/usr/sbin/debootstrap", "debootstrap"),
        )
        if not Path(tool).exists()
    })  # fmt: skip
    if not wanted:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable(f"{', '.join(wanted)} missing and apt-get unusable here")
    with locked(CACHE / "apt.lock"):
        for command in (
            ["apt-get", "update", "--quiet", "--quiet"],
            ["apt-get", "install", "--yes", "--quiet", "--no-install-recommends",
             *wanted],
        ):  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0 and not all(
                Path(tool).exists() for tool in (DOCKERD, "/usr/sbin/debootstrap")
            ):
                raise Unavailable(f"{' '.join(command)}: {done.stderr[-500:]}")


# An engine that runs already and reaches the registries (GitHub's runners):
# the tests use it, and pull the real base images instead of making stand-ins.
ENGINE_ENV = "PRODSTARTER_DOCKER_HOST"


@dataclass
class Engine:
    """A running dockerd, reached through its own socket."""

    host: str
    registry: bool = False

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 300,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [DOCKER, *args], env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False, input=input,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        return done

    def answers(self) -> bool:
        try:
            return self.docker("version", check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def images(self) -> set[str]:
        listed = self.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
        return set(listed.split())


@contextmanager
def engine() -> Iterator[Engine]:
    """dockerd with no networking of its own (containers use the host's) and
    its own socket, data and exec folders; stopped and removed afterwards.
    With PRODSTARTER_DOCKER_HOST set, the engine there instead."""
    if os.environ.get(ENGINE_ENV):
        given = Engine(os.environ[ENGINE_ENV], registry=True)
        if not given.answers():
            raise Unavailable(f"no engine answers at {given.host}")
        yield given
        return
    install_engine()
    # Short: the engine's sockets live under it (108 characters at most).
    folder = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp"))
    namespace = "prodstarter-" + re.sub(r"[^A-Za-z0-9]", "", folder.name)
    socket = folder / "docker.sock"
    log = folder / "dockerd.log"
    with log.open("wb") as output:
        daemon = subprocess.Popen(
            [DOCKERD, "--host", f"unix://{socket}",
             "--data-root", str(folder / "data"), "--exec-root", str(folder / "exec"),
             "--pidfile", str(folder / "docker.pid"),
             "--bridge=none", "--iptables=false", "--ip-forward=false",
             "--ip-masq=false",
             # Its own namespaces in a containerd it may share (the host's,
             # or another xdist worker's engine).
             f"--containerd-namespace={namespace}",
             f"--containerd-plugins-namespace={namespace}-plugins"],
            stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = Engine(f"unix://{socket}")
    try:
        deadline = time.monotonic() + 60
        while not running.answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise Unavailable(f"dockerd did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield running
    finally:
        if daemon.poll() is None:
            leftover = running.docker("ps", "-aq", check=False).stdout.split()
            if leftover:
                running.docker("rm", "-f", *leftover, check=False)
            daemon.terminate()
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        unmount_under(folder)
        shutil.rmtree(folder, ignore_errors=True)


def unmount_under(folder: Path) -> None:
    """Unmount what the engine left mounted under `folder` (its default
    network namespace, bound at exec/netns/default), deepest first."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for point in sorted(
        (p for p in points if p.startswith(f"{folder}/")), reverse=True
    ):
        subprocess.run(["umount", point], check=False, capture_output=True)


def _recipe_key(*parts: str) -> str:
    digest = hashlib.sha256("\0".join(parts).encode())
    if CERTIFICATES.is_file():
        digest.update(CERTIFICATES.read_bytes())
    return digest.hexdigest()[:16]


def made_once(tarball: Path, make: Callable[[Path, Path], None]) -> Path:
    """`tarball`, made the first time by `make(scratch_folder, partial_tar)`
    (one process at a time; a make that fails leaves nothing behind)."""
    with locked(tarball.with_suffix(".lock")):
        if tarball.is_file():
            return tarball
        scratch = Path(tempfile.mkdtemp(prefix="make-", dir=CACHE))
        partial = tarball.with_suffix(".partial")
        try:
            make(scratch, partial)
            partial.rename(tarball)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            partial.unlink(missing_ok=True)
    return tarball


def python_root_tarball(python: str, suite: str = SUITE) -> Path:
    """A tar of Debian `suite`'s minimal root with `python<python>`."""

    def make(root: Path, tar: Path) -> None:
        made = subprocess.run(
            ["debootstrap", "--variant=minbase",
             f"--include=python{python},ca-certificates", suite, str(root),
             DEBIAN_MIRROR],
            capture_output=True, text=True, check=False, timeout=900,
        )  # fmt: skip
        if made.returncode != 0:
            raise Unavailable(f"debootstrap failed:\n{made.stdout[-2000:]}")
        for name in (f"python{python}", "python3", "python"):
            link = root / "usr" / "local" / "bin" / name
            link.unlink(missing_ok=True)
            link.symlink_to(f"/usr/bin/python{python}")
        if CERTIFICATES.is_file():
            shutil.copyfile(CERTIFICATES, root / "etc/ssl/certs/ca-certificates.crt")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "-cf", str(tar), "."],
            check=True,
        )

    key = _recipe_key("python", python, suite, DEBIAN_MIRROR, "v1")
    return made_once(CACHE / f"python-{python}-{suite}-{key}.tar", make)


def uv_tarball(version: str) -> Path:
    """A tar of `uv` and `uvx` from uv's wheel on PyPI."""

    def make(target: Path, tar: Path) -> None:
        subprocess.run(
            [str(Path(sys.executable).parent / "uv"), "pip", "install", "--quiet",
             "--no-deps", "--target", str(target), "--python", sys.executable,
             f"uv=={version}"],
            check=True, capture_output=True,
        )  # fmt: skip
        with tarfile.open(tar, "w") as archive:
            for name in ("uv", "uvx"):
                archive.add(target / "bin" / name, arcname=name)

    return made_once(CACHE / f"uv-{version}.tar", make)


def stand_in_bases(running: Engine, dockerfile: str, python: str) -> list[str]:
    """Import the images `dockerfile` builds from, under the names it uses."""
    made = []
    suite_match = PYTHON_BASE.search(dockerfile)
    uv_match = UV_IMAGE.search(dockerfile)
    assert suite_match, "the Dockerfile's python FROM line changed"
    assert uv_match, "the Dockerfile's uv FROM line changed"
    python_image = f"python:{python}-slim-{suite_match.group(1)}"
    uv_image = f"ghcr.io/astral-sh/uv:{uv_match.group(1)}"
    if running.registry:
        for image in (python_image, uv_image):
            running.docker("pull", "--quiet", image)
        return [python_image, uv_image]
    present = running.images()
    if python_image not in present:
        tarball = python_root_tarball(python, suite_match.group(1))
        running.docker(
            "import",
            "--change", "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change", "ENV LANG=C.UTF-8",
            "--change", f"ENV SSL_CERT_FILE={CERTIFICATES}",
            "--change", 'CMD ["python3"]',
            str(tarball), python_image,
        )  # fmt: skip
    made.append(python_image)
    if uv_image not in present:
        running.docker("import", str(uv_tarball(uv_match.group(1))), uv_image)
    made.append(uv_image)
    return made


def build(running: Engine, project: Path, tag: str) -> float:
    """`docker build` of the service's own Dockerfile (its syntax line left
    out, see SYNTAX_LINE) on the host network; the seconds it took."""
    dockerfile = (project / "Dockerfile").read_text()
    with tempfile.TemporaryDirectory(prefix="dockerfile-") as folder:
        local = Path(folder) / "Dockerfile"
        local.write_text(SYNTAX_LINE.sub("", dockerfile, count=1))
        started = time.monotonic()
        running.docker(
            "build", "--network", "host", "--file", str(local), "--tag", tag,
            str(project), timeout=900,
        )  # fmt: skip
        return time.monotonic() - started


# What run_args translates; any other key fails the test rather than being
# left out without a word.
POD_SECURITY = {"runAsNonRoot", "runAsUser", "runAsGroup", "fsGroup", "seccompProfile"}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation", "readOnlyRootFilesystem", "runAsNonRoot",
    "capabilities", "runAsUser", "runAsGroup",
}  # fmt: skip
# Not run by the engine: probes (the tests call them), ports (host network),
# the image (the test's build).
CONTAINER_KEYS = {
    "name", "image", "imagePullPolicy", "command", "ports", "envFrom",
    "startupProbe", "livenessProbe", "readinessProbe", "lifecycle", "resources",
    "securityContext", "volumeMounts",
}  # fmt: skip


@dataclass
class Pod:
    """The pod of a workload in the service's manifests."""

    name: str
    spec: dict[str, Any]

    @property
    def grace_seconds(self) -> int:
        return int(self.spec.get("terminationGracePeriodSeconds", 30))

    def container(self, name: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = [
            c for c in self.spec["containers"] if c["name"] == name
        ]
        (container,) = found
        return container

    def pre_stop_seconds(self, name: str) -> int:
        """The preStop pause Kubernetes takes before SIGTERM (docker has none)."""
        hook = self.container(name).get("lifecycle", {}).get("preStop", {})
        return int(hook.get("sleep", {}).get("seconds", 0))


@dataclass
class Manifests:
    """deploy/k8s/base of a rendered service: its workloads, ConfigMap and
    the keys of its Secret (secret.example.yaml)."""

    docs: list[dict[str, Any]]
    secret_name: str
    secret_keys: list[str]

    @classmethod
    def read(cls, project: Path) -> Manifests:
        import yaml

        base = project / "deploy" / "k8s" / "base"
        docs = [
            doc
            for path in sorted(base.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())
            if doc
        ]
        secret = yaml.safe_load(
            (project / "deploy/k8s/secret.example.yaml").read_text()
        )
        return cls(docs, secret["metadata"]["name"], list(secret["stringData"]))

    def find(self, kind: str, component: str) -> list[dict[str, Any]]:
        return [
            d
            for d in self.docs
            if d["kind"] == kind
            and d["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ]

    def pod(self, kind: str, component: str) -> Pod:
        (doc,) = self.find(kind, component)
        return Pod(doc["metadata"]["name"], doc["spec"]["template"]["spec"])

    def env(
        self, pod: Pod, container: str, secret: Mapping[str, str]
    ) -> dict[str, str]:
        """The container's environment from its envFrom: the ConfigMap's data
        and the Secret (`secret` holds the test's values for its keys)."""
        maps = {
            d["metadata"]["name"]: {k: str(v) for k, v in d["data"].items()}
            for d in self.docs
            if d["kind"] == "ConfigMap"
        }
        env: dict[str, str] = {}
        for source in pod.container(container).get("envFrom", []):
            if "configMapRef" in source:
                env.update(maps[source["configMapRef"]["name"]])
            else:
                assert source["secretRef"]["name"] == self.secret_name, source
                assert set(secret) == set(self.secret_keys), "the Secret's keys"
                env.update(secret)
        return env


@dataclass
class Container:
    """A container started from a pod's container spec."""

    running: Engine
    name: str
    started: float

    def state(self) -> dict[str, Any]:
        shown = self.running.docker("inspect", "--format", "{{json .State}}", self.name)
        state: dict[str, Any] = json.loads(shown.stdout)
        return state

    def logs(self) -> str:
        done = self.running.docker("logs", self.name, check=False)
        return done.stdout + done.stderr

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        """`command` inside the running container (an exec probe)."""
        return self.running.docker("exec", self.name, *command, check=False)

    def remove(self) -> None:
        self.running.docker("rm", "--force", "--volumes", self.name, check=False)


def claim_volume(running: Engine, name: str, image: str, fs_group: int) -> str:
    """A volume as a claim mounted with `fsGroup`: empty (nothing copied from
    the image), its root owned by root:fsGroup, group-writable and setgid."""
    running.docker("volume", "create", name)
    running.docker(
        "run", "--rm", "--network", "none", "--user", "0:0", "--no-healthcheck",
        "--mount", f"type=volume,src={name},dst=/claim,volume-nocopy",
        image, "sh", "-c", f"chown 0:{fs_group} /claim && chmod 2775 /claim",
    )  # fmt: skip
    return name


def run_args(
    pod: Pod,
    container: str,
    env: Mapping[str, str],
    volumes: Mapping[str, str],
) -> list[str]:
    """`docker run` options that run `container` of `pod` as Kubernetes would:
    the same user and groups, read-only root, dropped capabilities, no
    privilege escalation, the same writable mounts (emptyDir as tmpfs, a
    claim as the volume in `volumes`), limits, and the environment."""
    spec = pod.container(container)
    pod_security = pod.spec.get("securityContext", {})
    security = spec.get("securityContext", {})
    assert set(pod_security) <= POD_SECURITY, set(pod_security) - POD_SECURITY
    assert set(security) <= CONTAINER_SECURITY, set(security) - CONTAINER_SECURITY
    assert set(spec) <= CONTAINER_KEYS, set(spec) - CONTAINER_KEYS
    assert set(security.get("capabilities", {})) <= {"drop"}, "capabilities added"
    # Kubernetes' default is Unconfined: the manifests must ask for docker's.
    assert pod_security.get("seccompProfile") == {"type": "RuntimeDefault"}
    args = ["--network", "host", "--stop-timeout", str(pod.grace_seconds)]
    user = security.get("runAsUser", pod_security.get("runAsUser"))
    group = security.get("runAsGroup", pod_security.get("runAsGroup"))
    if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")):
        assert user not in (None, 0), f"{pod.name}/{container} must not run as root"
    args += ["--user", f"{user}:{group}" if group is not None else str(user)]
    if "fsGroup" in pod_security:
        args += ["--group-add", str(pod_security["fsGroup"])]
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for capability in security.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", capability]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    sources = {volume["name"]: volume for volume in pod.spec.get("volumes", [])}
    for mount in spec.get("volumeMounts", []):
        source = sources[mount["name"]]
        if "emptyDir" in source:
            size = source["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m")
            args += ["--tmpfs", f"{mount['mountPath']}:rw,size={size},mode=1777"]
        else:
            claim = source["persistentVolumeClaim"]["claimName"]
            args += [
                "--mount",
                f"type=volume,src={volumes[claim]},dst={mount['mountPath']}",
            ]
    limits = spec.get("resources", {}).get("limits", {})
    if "memory" in limits:
        args += ["--memory", limits["memory"].replace("Mi", "m").replace("Gi", "g")]
    if "cpu" in limits:
        cpu = str(limits["cpu"])
        args += ["--cpus", str(int(cpu[:-1]) / 1000) if cpu.endswith("m") else cpu]
    liveness = spec.get("livenessProbe", {}).get("httpGet", {}).get("path")
    if liveness != "/live":
        # The image's HEALTHCHECK asks the API's /live: not this container's
        # (Kubernetes ignores HEALTHCHECK and runs the manifest's probes).
        args.append("--no-healthcheck")
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    return args


def start(
    running: Engine,
    image: str,
    pod: Pod,
    container: str,
    env: Mapping[str, str],
    volumes: Mapping[str, str],
    name: str,
    detach: bool = True,
) -> Container:
    """Run one container of `pod` with the pod's own command."""
    command: Sequence[str] = pod.container(container)["command"]
    args = run_args(pod, container, env, volumes)
    started = time.monotonic()
    running.docker(
        "run", *(["--detach"] if detach else []), "--name", name, *args, image, *command
    )
    return Container(running, name, started)


def unused_port() -> int:
    """A port free on every address and outside the kernel's range for
    outgoing connections (which containers on the host network share)."""
    low, high = map(
        int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    )
    candidates = [port for port in range(10_000, 30_000) if not low <= port <= high]
    for port in random.sample(candidates, 50):
        with socketlib.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))  # nosec B104: a probe, closed at once
            except OSError:
                continue
            return port
    raise AssertionError("no free port found")
