"""The one tested mechanism behind every release's migration script.

A release declares what it renamed, moved or changed in a `Changes` table; this
module applies it. Standard library only: it runs with the Python that runs
copier, inside the service being updated, with copier's migration variables in
the environment (STAGE, VERSION_FROM, VERSION_TO).

- `before` stage: rewrite `.copier-answers.yml` (renamed questions, changed
  choice values) so that `copier update --defaults --skip-answered` keeps the
  owner's answers instead of silently taking new defaults.
- `after` stage: carry the owner's edits across moved files and renamed
  settings. Copier computes the owner's diff before any migration runs and
  deletes files the new release no longer has, so a moved file loses the
  owner's edits. We redo those merges here: a three-way merge (`git merge-file`)
  of the owner's committed file (the project's HEAD), the old release's render
  (base) and the new release's render (theirs). Renders come from
  `copier recopy` of the project's answers into a scratch folder.

Every step is idempotent: a second run finds nothing left to do.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ANSWERS_FILE = ".copier-answers.yml"
# Files where a renamed setting is rewritten: environment files and the
# deployment files an owner may have added (compose, Kubernetes, workflows).
SETTING_FILES = (
    ".env",
    ".env.*",
    "compose*.yaml",
    "compose*.yml",
    "docker-compose*.yaml",
    "docker-compose*.yml",
    "deploy/**",
    ".github/workflows/*.yml",
    ".github/workflows/*.yaml",
)
TOP_KEY = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_-]*):(?P<rest>.*)$")


@dataclass(frozen=True)
class Rewrite:
    """A text the template once wrote into a file the owner now owns, and
    what this release needs there instead (a codemod, as `ng update` runs).

    Applied where the file still holds `old` exactly; a file holding neither
    `old` nor `new` was changed by its owner and is reported, not touched.
    `unless_used`: skip the rewrite while this name still appears in the file
    outside `old` (an import the owner's own code uses).
    """

    path: str
    old: str
    new: str
    unless_used: str | None = None


@dataclass(frozen=True)
class Changes:
    """What one release renamed, moved or changed."""

    version: str
    renamed_questions: dict[str, str] = field(default_factory=dict)
    # Questions this release adds, answered for services made before it (when
    # the new default would change what an existing service is).
    added_answers: dict[str, str] = field(default_factory=dict)
    changed_choices: dict[str, dict[str, str]] = field(default_factory=dict)
    moved_files: dict[str, str] = field(default_factory=dict)
    # Moved files whose new path is an owner file now: moved as the owner
    # left them (updates no longer render owner files, so there is no new
    # release of them to merge with); later releases' rewrites adapt them.
    moved_as_is: tuple[str, ...] = ()
    renamed_settings: dict[str, str] = field(default_factory=dict)
    setting_files: tuple[str, ...] = SETTING_FILES
    rewrites: tuple[Rewrite, ...] = ()
    # Owner files (seams) this release introduces: updates never render
    # owner files, so a service made before gets each from the new release's
    # render once, where it has none (and where its folder is still there:
    # a folder the owner removed stays removed).
    added_owner_files: tuple[str, ...] = ()
    # Steps of the release's own, after the rest: each returns what it did.
    after_steps: tuple[Callable[[Path], list[str]], ...] = ()
    # Merge the heads of the service's own Alembic revisions (migrations/
    # versions) when there are several, so `python -m app migrate` and
    # `alembic revision` work without a manual step.
    merge_service_heads: bool = False


# ---------------------------------------------------------------- answers


def _scalar(text: str) -> str:
    """The value of a plain or quoted one-line YAML scalar."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return re.sub(r"\s+#.*$", "", text)


def migrate_answers(text: str, changes: Changes) -> tuple[str, list[str]]:
    """Rename questions and change choice values in an answers file.

    Works on top-level `key: value` lines, as copier writes them, and keeps
    every other line (comments, private keys, other answers) as it is.
    """
    lines = text.splitlines(keepends=True)
    present = {m["key"] for line in lines if (m := TOP_KEY.match(line))}
    done: list[str] = []
    out: list[str] = []
    for line in lines:
        match = TOP_KEY.match(line)
        if match is None:
            out.append(line)
            continue
        key, rest = match["key"], match["rest"]
        new_key = changes.renamed_questions.get(key)
        if new_key is not None:
            if new_key in present:  # half migrated: the new answer wins
                done.append(f"dropped {key} (already answered as {new_key})")
                continue
            done.append(f"renamed {key} to {new_key}")
            key = new_key
        values = changes.changed_choices.get(key, {})
        value = _scalar(rest)
        if value in values:
            done.append(f"{key}: {value} is now {values[value]}")
            rest = f" {values[value]}"
        ending = "\n" if line.endswith("\n") else ""
        out.append(f"{key}:{rest.rstrip(chr(10))}{ending}")
    for key, value in changes.added_answers.items():
        if key not in present:
            if out and not out[-1].endswith("\n"):
                out[-1] += "\n"
            out.append(f"{key}: {value}\n")
            done.append(f"answered the new question {key}: {value}")
    return "".join(out), done


def read_answer(text: str, key: str) -> str | None:
    for line in text.splitlines():
        match = TOP_KEY.match(line)
        if match and match["key"] == key:
            return _scalar(match["rest"])
    return None


def set_answer(text: str, key: str, value: str) -> str:
    pattern = re.compile(rf"^{re.escape(key)}:.*$", re.MULTILINE)
    return pattern.sub(lambda _: f"{key}: {value}", text, count=1)


# ---------------------------------------------------------------- settings


def rename_settings(text: str, renames: dict[str, str]) -> str:
    """Rename whole-word occurrences of each old variable name."""
    for old, new in renames.items():
        text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(old)}(?![A-Za-z0-9_])", new, text)
    return text


SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".mypy_cache"}


def matching_files(project: Path, patterns: Sequence[str]) -> Iterator[str]:
    """Project files (relative paths) matching any pattern; `**` spans folders."""
    found = []
    for root, dirs, files in os.walk(project):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        found += [(Path(root) / name).relative_to(project).as_posix() for name in files]
    for relative in sorted(found):
        for pattern in patterns:
            if fnmatch.fnmatchcase(relative, pattern) or (
                pattern.endswith("/**") and relative.startswith(pattern[:-2])
            ):
                yield relative
                break


# ---------------------------------------------------------------- git and copier


def git(
    project: Path, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=check,
        input=stdin,
    )


def mark_unmerged(project: Path, path: str, base: str, ours: str, theirs: str) -> None:
    """Record a conflict in the index (stages 1-3), as copier does for its own,
    so `git status` lists the file as unmerged."""
    entries = [f"0 {'0' * 40}\t{path}"]
    for stage, text in ((1, base), (2, ours), (3, theirs)):
        sha = git(project, "hash-object", "-w", "--stdin", stdin=text).stdout.strip()
        entries.append(f"100644 {sha} {stage}\t{path}")
    git(project, "update-index", "--index-info", stdin="\n".join(entries) + "\n")


def committed(project: Path, path: str) -> str | None:
    """The file as the owner last committed it (HEAD), or None."""
    # `./` makes the path relative to the service, which may be a subfolder
    # of the repository.
    shown = git(project, "show", f"HEAD:./{path}", check=False)
    return shown.stdout if shown.returncode == 0 else None


def merge(ours: str, base: str, theirs: str) -> tuple[str, bool]:
    """Three-way merge of text; returns (result, has_conflicts)."""
    with tempfile.TemporaryDirectory() as scratch:
        paths = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(scratch, name)
            path.write_text(text)
            paths.append(str(path))
        result = subprocess.run(
            ["git", "merge-file", "-p", "-L", "before updating", "-L", "last update",
             "-L", "after updating", *paths],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
    if result.returncode < 0 or result.returncode > 127:
        raise RuntimeError(f"git merge-file failed: {result.stderr}")
    return result.stdout, result.returncode > 0


def render(template: str, ref: str, answers: str, destination: Path) -> Path:
    """Render `template` at `ref` with these answers (a copier answers file)."""
    destination.mkdir(parents=True, exist_ok=True)
    (destination / ANSWERS_FILE).write_text(set_answer(answers, "_src_path", template))
    subprocess.run(
        [sys.executable, "-m", "copier", "recopy", "--trust", "--defaults",
         "--skip-tasks", "--overwrite", "--quiet", "--vcs-ref", ref, str(destination)],
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return destination


# ---------------------------------------------------------------- stages


def before(project: Path, changes: Changes) -> list[str]:
    answers_path = project / ANSWERS_FILE
    text = answers_path.read_text()
    migrated, done = migrate_answers(text, changes)
    if migrated != text:
        answers_path.write_text(migrated)
    return done


@dataclass
class Renders:
    """Lazily rendered old and new releases, for the merge bases."""

    project: Path
    template: str
    scratch: Path
    _old: Path | None = None
    _new: Path | None = None

    def old(self) -> Path:
        if self._old is None:
            answers = committed(self.project, ANSWERS_FILE)
            assert answers is not None, "the project's HEAD has no answers file"
            ref = read_answer(answers, "_commit") or os.environ["VERSION_FROM"]
            self._old = render(self.template, ref, answers, self.scratch / "old")
        return self._old

    def new(self) -> Path:
        if self._new is None:
            answers = (self.project / ANSWERS_FILE).read_text()
            ref = read_answer(answers, "_commit") or os.environ["VERSION_TO"]
            self._new = render(self.template, ref, answers, self.scratch / "new")
        return self._new


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def move_files(project: Path, changes: Changes, renders: Renders) -> list[str]:
    done = []
    for old, new in changes.moved_files.items():
        ours = committed(project, old)
        if ours is None:  # never had it, or already moved and committed
            continue
        base = _read(renders.old() / old)
        theirs = _read(renders.new() / new)
        if theirs is None:
            raise RuntimeError(f"{new} is not in the new release")
        if new in changes.moved_as_is:
            merged, conflicted = ours, False
        elif ours == base:
            merged, conflicted = theirs, False
        else:
            merged, conflicted = merge(ours, base or "", theirs)
        target = project / new
        changed = _read(target) != merged or (project / old).exists()
        if not changed:  # a second run before the update is committed
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(merged)
        (project / old).unlink(missing_ok=True)
        if conflicted:
            mark_unmerged(project, new, base or "", ours, theirs)
        edits = "owner edits merged" if ours != base else "no owner edits"
        done.append(
            f"moved {old} to {new} ({edits}{', CONFLICTS' if conflicted else ''})"
        )
    return done


def rename_settings_in_files(
    project: Path, changes: Changes, renders: Renders
) -> list[str]:
    if not changes.renamed_settings:
        return []
    renames = changes.renamed_settings
    changed = []
    for relative in matching_files(project, changes.setting_files):
        current = (project / relative).read_text(errors="surrogateescape")
        template_owned = (renders.new() / relative).is_file()
        ours = committed(project, relative)
        if template_owned and ours is not None:
            # Redo copier's merge with the renames applied to every side, so
            # the owner's values stay on the renamed lines.
            base = _read(renders.old() / relative) or ""
            theirs = (renders.new() / relative).read_text()
            ours, base = rename_settings(ours, renames), rename_settings(base, renames)
            result, conflicted = merge(ours, base, theirs)
            if conflicted:
                mark_unmerged(project, relative, base, ours, theirs)
            elif git(project, "ls-files", "--unmerged", "--", relative).stdout:
                git(project, "add", "--", relative)  # copier marked it conflicted
        else:
            result = rename_settings(current, renames)
        if result != current:
            (project / relative).write_text(result, errors="surrogateescape")
            changed.append(relative)
    if not changed:
        return []
    names = ", ".join(f"{old} to {new}" for old, new in renames.items())
    return [f"renamed {names} in {', '.join(changed)}"]


# ---------------------------------------------------------------- codemods


def apply_rewrites(project: Path, rewrites: Sequence[Rewrite]) -> list[str]:
    """Apply each rewrite where its text is; a file none of whose rewrites
    applied, though one did not find its text, is reported."""
    rewrote: list[str] = []
    missed: dict[str, Rewrite] = {}
    for rewrite in rewrites:
        path = project / rewrite.path
        if not path.is_file():
            continue
        text = path.read_text()
        if rewrite.old not in text:
            if rewrite.new and rewrite.new not in text:
                missed.setdefault(rewrite.path, rewrite)
            continue
        if rewrite.unless_used and rewrite.unless_used in text.replace(
            rewrite.old, "", 1
        ):
            continue
        path.write_text(text.replace(rewrite.old, rewrite.new, 1))
        if rewrite.path not in rewrote:
            rewrote.append(rewrite.path)
    done = [f"rewrote {name}" for name in rewrote]
    for name, rewrite in missed.items():
        if name not in rewrote:
            done.append(
                f"left {name} as its owner changed it: replace"
                f" {rewrite.old.strip()!r} with {rewrite.new.strip()!r} by hand"
            )
    return done


# ---------------------------------------------------------------- alembic

SERVICE_VERSIONS = Path("migrations/versions")
REVISION = re.compile(r"^revision(?:: str)? = [\"']([^\"']+)[\"']", re.MULTILINE)
DOWN_REVISION = re.compile(r"^down_revision(?:: [^=]+)? = (.+)$", re.MULTILINE)


def revision_graph(folder: Path) -> dict[str, tuple[str, ...]]:
    """Each revision in `folder` and its parents, read from the files."""
    graph = {}
    for path in sorted(folder.glob("*.py")):
        text = path.read_text()
        revision, parents = REVISION.search(text), DOWN_REVISION.search(text)
        if revision is None or parents is None:
            continue
        graph[revision.group(1)] = tuple(
            re.findall(r"[\"']([^\"']+)[\"']", parents.group(1))
        )
    return graph


def heads_of(graph: dict[str, tuple[str, ...]]) -> list[str]:
    parents = {parent for ups in graph.values() for parent in ups}
    return sorted(revision for revision in graph if revision not in parents)


MERGE = '''"""merge the service's heads ({names})

Written by the template's migration to v{version}: before it, template
revisions and yours shared one folder and could branch apart.

Revision ID: {revision}
Revises: {names}
Create Date: {date}
"""

from collections.abc import Sequence

revision: str = "{revision}"
down_revision: str | Sequence[str] | None = ({parents})
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''


def merge_service_heads(project: Path, version: str) -> list[str]:
    folder = project / SERVICE_VERSIONS
    heads = heads_of(revision_graph(folder)) if folder.is_dir() else []
    if len(heads) < 2:
        return []
    revision = "merge_" + "_".join(head[:12] for head in heads)
    path = folder / f"20261205_{revision}.py"
    path.write_text(
        MERGE.format(
            names=", ".join(heads),
            version=version,
            revision=revision,
            date="2026-12-05 00:00:00",
            parents=", ".join(f'"{head}"' for head in heads),
        )
    )
    return [f"merged the Alembic heads {', '.join(heads)} in {path.name}"]


def add_owner_files(project: Path, paths: Sequence[str], renders: Renders) -> list[str]:
    added = []
    for path in paths:
        target = project / path
        if target.exists() or not target.parent.is_dir():
            continue
        source = renders.new() / path
        if not source.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        added.append(path)
    return [f"added {', '.join(added)}"] if added else []


def after(project: Path, changes: Changes, template: str) -> list[str]:
    scratch = Path(tempfile.mkdtemp(prefix="prodstarter-migration-"))
    try:
        renders = Renders(project, template, scratch)
        done = [
            *move_files(project, changes, renders),
            *rename_settings_in_files(project, changes, renders),
            *add_owner_files(project, changes.added_owner_files, renders),
            *apply_rewrites(project, changes.rewrites),
        ]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if changes.merge_service_heads:
        done += merge_service_heads(project, changes.version)
    for step in changes.after_steps:
        done += step(project)
    return done


STAGES: dict[str, Callable[..., list[str]]] = {"before": before, "after": after}


def main(changes: Changes, argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=f"template migration to {changes.version}"
    )
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--template", help="the template checkout (after stage)")
    parser.add_argument("--project", default=".", help="the service (default: cwd)")
    args = parser.parse_args(argv)
    project = Path(args.project).resolve()
    if args.stage == "before":
        done = before(project, changes)
    else:
        if not args.template:
            parser.error("the after stage needs --template")
        done = after(project, changes, args.template)
    summary = "; ".join(done) if done else "nothing to change"
    print(f"migration {changes.version} ({args.stage}): {summary}")
    return 0
