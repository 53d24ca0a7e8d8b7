"""TUTORIAL.md works as written.

Its code blocks are followed in order in a temporary directory, against this
checkout: shell blocks run (`sh`), files are written (`python PATH`) and edited
(`diff PATH`) as shown, servers (`sh server`) are started and stopped at the
end of their section with bounded waits. The template URL becomes this
checkout at the working tree's tag. Blocks that need Docker (`sh docker`) or a
cluster (`sh cluster`) cannot run here: they are checked against the files
and the rendered manifests they name. The last section, the template update,
runs in a second service made at the newest recorded release, with the same
notes resource, and updates it to the working tree.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, git, interpreter, missing, run, tool_env
from tests.support.kustomize import build
from tests.support.server import free_port, running, wait_for
from tests.support.template_repo import recorded_releases

TUTORIAL = ROOT / "TUTORIAL.md"
TEMPLATE_URL = "https://github.com/example/prodstarter-fastapi.git"
# What tutorials before v0.12.0 named the template by (copier's shorthand).
OLD_TEMPLATE_URL = "gh:example/prodstarter-fastapi"
SERVICE_ADDRESS = "127.0.0.1:8000"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SHELL_KINDS = {
    "sh": "run",
    "sh server": "server",
    "sh docker": "docker",
    "sh cluster": "cluster",
}
FILE_LANGUAGES = {"python", "toml", "yaml", "ini"}
# Commands that must sit in a `sh docker` or `sh cluster` block.
NEEDS_DOCKER_OR_CLUSTER = re.compile(
    r"^\s*(docker\b|kubectl\s+(?!kustomize\b))", re.MULTILINE
)
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Tutorial Reader",
    "GIT_AUTHOR_EMAIL": "reader@example.com",
    "GIT_COMMITTER_NAME": "Tutorial Reader",
    "GIT_COMMITTER_EMAIL": "reader@example.com",
}
# Options of docker and kubectl taking a value (as a separate argument).
VALUED = {"-n", "-l", "-f", "-t"}
CONFLICT_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>)( |$)", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    section: str
    kind: str  # run, server, docker, cluster, file, diff, text
    body: str
    path: str = ""


def parse(text: str) -> list[Block]:
    blocks = []
    for section in re.split(r"^(?=## )", text, flags=re.MULTILINE):
        title = section.splitlines()[0] if section.startswith("## ") else ""
        for match in FENCE.finditer(section):
            info, body = match.group(1).strip(), match.group(2)
            words = info.split()
            if info in SHELL_KINDS:
                blocks.append(Block(title, SHELL_KINDS[info], body))
            elif info == "text":
                blocks.append(Block(title, "text", body))
            elif len(words) == 2 and words[0] in FILE_LANGUAGES:
                blocks.append(Block(title, "file", body, words[1]))
            elif len(words) == 2 and words[0] == "diff":
                blocks.append(Block(title, "diff", body, words[1]))
            else:
                raise ValueError(f"{title}: the test does not know a {info!r} block")
    return blocks


def sections(blocks: list[Block]) -> list[list[Block]]:
    grouped: dict[str, list[Block]] = {}
    for block in blocks:
        grouped.setdefault(block.section, []).append(block)
    return list(grouped.values())


def apply_diff(text: str, diff: str) -> str:
    """Apply a diff whose hunks (split by `@@` lines) match the text once each."""
    for hunk in re.split(r"^@@.*\n", diff, flags=re.MULTILINE):
        lines = hunk.splitlines(keepends=True)
        if not lines:
            continue
        # An empty line is an empty context line whose space an editor ate.
        lines = [" \n" if line == "\n" else line for line in lines]
        assert all(line[0] in " +-" for line in lines), hunk
        before = "".join(line[1:] for line in lines if line[0] in " -")
        after = "".join(line[1:] for line in lines if line[0] in " +")
        assert text.count(before) == 1, f"this hunk does not match once:\n{hunk}"
        text = text.replace(before, after)
    return text


@dataclass
class Command:
    argv: list[str]
    output: str = ""  # the file a `>` redirect names


def commands(body: str, variables: dict[str, str]) -> Iterator[Command]:
    """The simple commands of a shell block, variables expanded; `NAME=value`
    lines set variables."""
    for line in body.replace("\\\n", " ").splitlines():
        line = line.strip()
        assignment = re.fullmatch(r"([A-Z_]+)=(\S+)", line)
        if assignment:
            variables[assignment.group(1)] = assignment.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        line = re.sub(
            r"\$\{?([A-Z_]+)\}?", lambda m: variables.get(m.group(1), m.group(0)), line
        )
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command = Command([])
        tokens = list(lexer)
        while tokens:
            token = tokens.pop(0)
            if token in {"|", "&&", ";", "(", ")"}:
                if command.argv:
                    yield command
                command = Command([])
            elif token == ">":
                command.output = tokens.pop(0)
            else:
                command.argv.append(token)
        if command.argv:
            yield command


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def positional(argv: list[str]) -> list[str]:
    """Arguments that are neither options nor the values of VALUED options."""
    words = []
    for before, arg in zip(["", *argv], argv, strict=False):
        if not arg.startswith("-") and before not in VALUED:
            words.append(arg)
    return words


def secret_names(node: Any) -> set[str]:
    """Names of the Secrets a manifest reads (secretRef / secretKeyRef)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"secretRef", "secretKeyRef"} and isinstance(value, dict):
                found.add(value["name"])
            found |= secret_names(value)
    elif isinstance(node, list):
        for value in node:
            found |= secret_names(value)
    return found


@dataclass
class Reader:
    """Follows the tutorial in one directory, as a reader in a terminal would."""

    home: Path
    env: Mapping[str, str]
    repo: Path
    copy_ref: str
    update_ref: str = ""
    outputs: list[tuple[Block, str]] = field(default_factory=list)
    images: set[str] = field(default_factory=set)

    cwd: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True)
        self.cwd = self.home

    def follow(self, blocks: list[Block]) -> None:
        """One section: a server it starts runs until the section ends."""
        with ExitStack() as stack:
            address = ""
            for block in blocks:
                if block.kind == "server":
                    address = self.start(block, stack)
                elif block.kind == "run":
                    self.shell(block, address)
                elif block.kind in {"file", "diff"}:
                    self.edit(block)
                elif block.kind == "docker":
                    self.check_docker(block)
                elif block.kind == "cluster":
                    self.check_cluster(block)

    def shell(self, block: Block, address: str = "") -> str:
        source = f"{shlex.quote(f'file://{self.repo}/.git')} --vcs-ref {self.copy_ref}"
        body = block.body.replace(TEMPLATE_URL, source)
        body = body.replace(OLD_TEMPLATE_URL, source)
        if self.update_ref:
            body = re.sub(
                r"^(.*\bcopier update\b.*)$",
                rf"\1 --vcs-ref {self.update_ref}",
                body,
                flags=re.MULTILINE,
            )
        if address:
            body = body.replace(SERVICE_ADDRESS, address)
        state = self.home / ".cwd"
        script = f"set -euo pipefail\n{body}\npwd > {shlex.quote(str(state))}\n"
        result = run(["bash", "-c", script], self.cwd, self.env, timeout=900)
        assert result.returncode == 0, f"{block.section}:\n{body}\n{result.output}"
        self.cwd = Path(state.read_text().strip())
        self.outputs.append((block, result.output))
        return result.output

    def start(self, block: Block, stack: ExitStack) -> str:
        port = free_port()
        env = dict(self.env, SERVER_PORT=str(port))
        log = self.home / f"server-{port}.log"
        process = stack.enter_context(running(block.body, self.cwd, env, log))
        ready = wait_for(
            f"http://127.0.0.1:{port}/ready", 200, process, log, seconds=180
        )
        assert ready == 200, log.read_text()
        return f"127.0.0.1:{port}"

    def edit(self, block: Block) -> None:
        target = self.cwd / block.path
        if block.kind == "file":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body)
        else:
            target.write_text(apply_diff(target.read_text(), block.body))

    def check_docker(self, block: Block) -> None:
        for command in commands(block.body, {}):
            argv = command.argv
            if argv[0] == "curl":
                continue  # a call to the compose stack
            assert argv[0] == "docker", argv
            if argv[1] == "build":
                context = self.cwd / positional(argv[2:])[-1]
                dockerfile = option(argv, "-f") or "Dockerfile"
                assert (context / dockerfile).is_file(), argv
                self.images.add(option(argv, "-t") or "")
            elif argv[1] == "compose":
                compose = yaml.safe_load((self.cwd / "compose.yaml").read_text())
                verb, *rest = positional(argv[2:])
                assert verb in {"up", "down", "run", "logs"}, argv
                for service in rest:
                    assert service in compose["services"], argv
            else:
                raise AssertionError(f"a docker command the test does not know: {argv}")

    def check_cluster(self, block: Block) -> None:
        found = list(commands(block.body, {}))
        rendered: list[dict[str, Any]] = []
        for command in found:
            if command.argv[:2] == ["kubectl", "kustomize"]:
                rendered += self.kustomize(command.argv[2])
        assert rendered, "the block renders no overlay"
        files = {c.output for c in found if c.argv[:2] == ["kubectl", "kustomize"]}
        overlay = self.cwd
        for command in found:
            argv = command.argv
            if argv[0] == "cd":
                overlay = self.cwd / argv[1]
            elif argv[0] == "kustomize":
                assert argv[1:4] == ["edit", "set", "image"], argv
                name = argv[4].split("=", 1)[0]
                kustomization = yaml.safe_load(
                    (overlay / "kustomization.yaml").read_text()
                )
                assert name in {i["name"] for i in kustomization["images"]}, argv
            elif argv[0] == "kubectl":
                check_kubectl(argv, rendered)
                assert option(argv, "-f") in {None, "-", *files}, argv
            else:
                assert argv[0] == "yq", f"a command the test does not know: {argv}"

    def kustomize(self, overlay: str) -> list[dict[str, Any]]:
        return build(self.cwd / overlay, self.env)  # kubectl's, where installed


def check_kubectl(argv: list[str], rendered: list[dict[str, Any]]) -> None:
    """What a kubectl command names (namespace, objects, labels, Secret) is
    in the rendered manifests."""
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered}
    namespaces = {
        doc["metadata"]["namespace"]
        for doc in rendered
        if "namespace" in doc["metadata"]
    }
    namespace = option(argv, "-n")
    if namespace:
        assert namespaces == {namespace}, (argv, namespaces)
    words = positional(argv[1:])
    if words[:2] == ["create", "namespace"]:
        assert ("Namespace", words[2]) in names, argv
    elif words[:3] == ["create", "secret", "generic"]:
        assert words[3] in secret_names(rendered), argv
    elif words[:2] == ["delete", "job"]:
        assert ("Job", words[2]) in names, argv
    for word in words:
        kind, _, name = word.partition("/")
        if kind in {"job", "deployment"} and name:
            assert (kind.capitalize(), name) in names, argv
    selector = option(argv, "-l")
    if selector:
        key, value = selector.split("=", 1)
        labels = [doc["metadata"].get("labels", {}) for doc in rendered]
        assert any(label.get(key) == value for label in labels), argv


REVISION = re.compile(r"^revision(?:: str)? = [\"']([^\"']+)[\"']", re.MULTILINE)
DOWN_REVISION = re.compile(r"^down_revision(?:: [^=]+)? = (.+)$", re.MULTILINE)


def follow_service_head(revision: Path) -> None:
    """Make a revision copied into another service follow that service's
    one head in migrations/versions."""
    graph: dict[str, set[str]] = {}
    for path in revision.parent.glob("*.py"):
        text = path.read_text()
        found, parents = REVISION.search(text), DOWN_REVISION.search(text)
        if found and parents and path != revision:
            graph[found.group(1)] = set(re.findall(r"[\"']([^\"']+)[\"']", parents[1]))
    (head,) = set(graph) - set().union(*graph.values())
    line = f'down_revision: str | Sequence[str] | None = "{head}"'
    revision.write_text(DOWN_REVISION.sub(line, revision.read_text(), count=1))


def tutorial() -> list[Block]:
    return parse(TUTORIAL.read_text())


def test_every_block_of_the_tutorial_is_one_the_test_knows() -> None:
    blocks = tutorial()
    kinds = {block.kind for block in blocks}
    runnable = "\n".join(b.body for b in blocks if b.kind in {"run", "server"})

    assert {"run", "server", "file", "diff", "docker", "cluster"} <= kinds
    assert runnable.count(TEMPLATE_URL) == 1
    assert re.search(rf"copier copy --trust .*{TEMPLATE_URL}", runnable)
    assert "copier update --trust --defaults" in sections(blocks)[-1][0].body
    # Docker and cluster commands belong in `sh docker` / `sh cluster` blocks.
    assert NEEDS_DOCKER_OR_CLUSTER.findall(runnable) == []
    for block in blocks:
        if block.kind in {"docker", "cluster"}:
            assert list(commands(block.body, {})), block


def test_a_diff_is_applied_hunk_by_hunk() -> None:
    text = "a\nb\n\nc\nd\n"

    # The second hunk's first line: an empty context line that lost its space.
    edited = apply_diff(text, " a\n+x\n b\n@@\n\n c\n-d\n")

    assert edited == "a\nx\nb\n\nc\n"
    with pytest.raises(AssertionError, match="does not match once"):
        apply_diff(text, " z\n+y\n")


def test_kubectl_commands_are_checked_against_the_render() -> None:
    job = {"name": "svc-migrate", "namespace": "svc", "labels": {"part": "migrate"}}
    rendered: list[dict[str, Any]] = [
        {"kind": "Namespace", "metadata": {"name": "svc"}},
        {"kind": "Job", "metadata": job},
    ]

    check_kubectl(["kubectl", "-n", "svc", "wait", "job/svc-migrate"], rendered)
    check_kubectl(["kubectl", "apply", "-l", "part=migrate", "-f", "-"], rendered)
    for wrong in (
        ["kubectl", "-n", "other", "get", "pods"],
        ["kubectl", "-n", "svc", "rollout", "status", "deployment/svc-api"],
        ["kubectl", "apply", "-l", "part=api", "-f", "-"],
        ["kubectl", "create", "secret", "generic", "svc"],
    ):
        with pytest.raises(AssertionError):
            check_kubectl(wrong, rendered)


def test_shell_blocks_are_read_as_commands() -> None:
    variables: dict[str, str] = {}
    block = 'NS=a\nkubectl -n "$NS" get x > out.yaml\n(cd b && kustomize edit)\n'

    found = list(commands(block, variables))

    assert [c.argv for c in found] == [
        ["kubectl", "-n", "a", "get", "x"],
        ["cd", "b"],
        ["kustomize", "edit"],
    ]
    assert found[0].output == "out.yaml"


@pytest.mark.slow
@pytest.mark.long
def test_the_tutorial_runs_as_written(
    template_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, next_tag = template_repo
    if shutil.which("curl") is None:
        missing("curl")
    env = tool_env(interpreter("3.12"), **GIT_IDENTITY)
    *steps, update = sections(tutorial())

    reader = Reader(tmp_path / "service", env, repo, copy_ref=next_tag)
    for section in steps:
        reader.follow(section)

    service = reader.cwd
    heads = next(out for block, out in reader.outputs if "alembic heads" in block.body)
    assert heads.count("(head)") == 2, heads
    assert "(template) (head)" in heads, heads
    calls = next(out for block, out in reader.outputs if "/api/v1/notes" in block.body)
    assert calls.count('"text":"Buy milk"') == 2, calls
    assert calls.rstrip().endswith("401"), calls
    assert git(service, "status", "--porcelain") == ""
    assert "example-service" in reader.images

    # The update: the same service made at the newest release, updated to
    # the working tree with the tutorial's commands.
    newest = recorded_releases()[-1]
    older = Reader(tmp_path / "older", env, repo, newest.tag, update_ref=next_tag)
    # Its owner followed the tutorial of that release.
    *older_steps, _ = sections(parse(git(repo, "show", f"{newest.commit}:TUTORIAL.md")))
    older.follow(older_steps[0])
    for block in [b for section in older_steps for b in section]:
        if block.kind in {"file", "diff"}:
            older.edit(block)
    for migration in service.glob("migrations/versions/*_create_notes.py"):
        # Written after the newest example revision of this release; at the
        # older release it follows that release's own head.
        copied = older.cwd / migration.relative_to(service)
        shutil.copy2(migration, copied)
        follow_service_head(copied)
    git(older.cwd, "add", "--all")
    git(older.cwd, "commit", "--quiet", "-m", "Add notes")

    older.follow(update)

    project = older.cwd
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == next_tag
    conflicted = [
        str(path.relative_to(project))
        for path in project.rglob("*.py")
        if ".venv" not in path.parts and CONFLICT_MARKER.search(path.read_text())
    ]
    assert conflicted == []
    # One head of the service's, one of the template's own branch.
    heads = next(out for block, out in older.outputs if "alembic heads" in block.body)
    assert heads.count("(head)") == 2, heads
    assert "(template) (head)" in heads, heads
    assert git(project, "status", "--porcelain") == ""
    subject = git(project, "log", "-1", "--format=%s").strip()
    assert subject == "Update from the template"
    # The notes survived the update (the full gates ran in the first service).
    run(
        ["uv", "run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/notes", "tests/test_migrations.py"],
        project,
        env,
    ).check()  # fmt: skip
