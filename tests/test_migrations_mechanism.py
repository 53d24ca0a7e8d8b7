"""The migration mechanism (migrations_copier/_lib.py) on its own: renaming
settings, finding the files owners keep settings in, and the three-way merge.

Fast unit tests: no copier run, no network. The release migrations that use
it have their own modules (tests/test_migration_v*.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.migration_fixtures import write
from tests.support.migrations import MIGRATIONS, load, load_lib

LIB: Any = load_lib()
# The renamed setting of v0.2.0, the one release that renamed one.
CHANGES: Any = load(MIGRATIONS / "v0_2_0.py").CHANGES


# ---------------------------------------------------------------- settings


def test_settings_are_renamed_as_whole_words_only() -> None:
    text = (
        "SERVER_FORWARDED_ALLOW_IPS=10.0.0.0/8\n"
        "export SERVER_FORWARDED_ALLOW_IPS\n"
        '  - name: SERVER_FORWARDED_ALLOW_IPS\n    value: "${SERVER_FORWARDED_ALLOW_IPS}"\n'
        "SERVER_FORWARDED_ALLOW_IPS_EXTRA=1\n"
        "MY_SERVER_FORWARDED_ALLOW_IPS=2\n"
    )

    renamed = LIB.rename_settings(text, CHANGES.renamed_settings)

    assert renamed == (
        "SERVER_TRUSTED_PROXIES=10.0.0.0/8\n"
        "export SERVER_TRUSTED_PROXIES\n"
        '  - name: SERVER_TRUSTED_PROXIES\n    value: "${SERVER_TRUSTED_PROXIES}"\n'
        "SERVER_FORWARDED_ALLOW_IPS_EXTRA=1\n"
        "MY_SERVER_FORWARDED_ALLOW_IPS=2\n"
    )
    assert LIB.rename_settings(renamed, CHANGES.renamed_settings) == renamed


SETTING_FILES_FOUND = [
    ".env",
    ".env.production",
    ".github/workflows/deploy.yml",
    "compose.yaml",
    "deploy/k8s/configmap.yaml",
]


def setting_files_tree(root: Path) -> Path:
    return write(
        root,
        {
            **{
                relative: "SERVER_FORWARDED_ALLOW_IPS=x\n"
                for relative in SETTING_FILES_FOUND
            },
            "app/settings.py": "forwarded_allow_ips: str = '127.0.0.1'\n",
            "README.md": "Set SERVER_FORWARDED_ALLOW_IPS.\n",
            ".git/config": "[core]\n",
            ".git/.env": "SERVER_FORWARDED_ALLOW_IPS=x\n",
            ".venv/.env": "SERVER_FORWARDED_ALLOW_IPS=x\n",
            ".venv/lib/compose.yaml": "SERVER_FORWARDED_ALLOW_IPS=x\n",
        },
    )


def test_setting_files_are_found_where_owners_keep_settings(tmp_path: Path) -> None:
    setting_files_tree(tmp_path)

    found = list(LIB.matching_files(tmp_path, LIB.SETTING_FILES))

    assert sorted(found) == SETTING_FILES_FOUND
    assert len(found) == len(set(found))


def test_nothing_under_git_or_venv_is_ever_a_setting_file(tmp_path: Path) -> None:
    setting_files_tree(tmp_path)

    found = list(LIB.matching_files(tmp_path, ("*",)))

    assert "app/settings.py" in found
    assert not [f for f in found if f.startswith((".git/", ".venv/"))]


# ---------------------------------------------------------------- merge


def test_edits_on_different_lines_merge_cleanly() -> None:
    base = "one\ntwo\nthree\nfour\nfive\n"
    ours = "one\ntwo (owner)\nthree\nfour\nfive\n"
    theirs = "one\ntwo\nthree\nfour\nfive (template)\n"

    merged, conflicted = LIB.merge(ours, base, theirs)

    assert merged == "one\ntwo (owner)\nthree\nfour\nfive (template)\n"
    assert conflicted is False


def test_the_same_line_changed_both_ways_is_a_conflict() -> None:
    base = "one\ntwo\nthree\n"
    ours = "one\ntwo (owner)\nthree\n"
    theirs = "one\ntwo (template)\nthree\n"

    merged, conflicted = LIB.merge(ours, base, theirs)

    assert conflicted is True
    assert merged == (
        "one\n"
        "<<<<<<< before updating\n"
        "two (owner)\n"
        "=======\n"
        "two (template)\n"
        ">>>>>>> after updating\n"
        "three\n"
    )
