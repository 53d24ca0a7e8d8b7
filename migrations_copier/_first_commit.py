"""Task after `copier copy`: make the new service a git repository with its
first commit.

`copier update` works only on a git repository whose last commit holds
`.copier-answers.yml`, and pre-commit installs its hooks only in a git
repository: a service that is one from its first minute can take updates
and run its hooks at once. The commit is made with the owner's own git
identity when git has one, else with the answers' author. A copy into a
folder already inside a git repository (a monorepo) is left for its owner
to commit. Without git, the copy still succeeds and says what to run.

Usage: _first_commit.py AUTHOR_NAME AUTHOR_EMAIL MESSAGE (from the service's
root). Standard library only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def main(author_name: str, author_email: str, message: str) -> int:
    if shutil.which("git") is None:
        print("git is not installed: run `git init` and commit before `copier update`")
        return 0
    if git("rev-parse", "--is-inside-work-tree").returncode == 0:
        print("inside a git repository already: commit the new service there")
        return 0
    # The owner's init.defaultBranch if they chose one, else main.
    if git("config", "init.defaultBranch").stdout.strip():
        git("init", "--quiet")
    elif git("init", "--quiet", "--initial-branch=main").returncode != 0:
        git("init", "--quiet")  # git before 2.28
        git("symbolic-ref", "HEAD", "refs/heads/main")
    git("add", "--all")
    identity: list[str] = []
    if not git("config", "user.name").stdout.strip():
        identity += ["-c", f"user.name={author_name}"]
    if not git("config", "user.email").stdout.strip():
        identity += ["-c", f"user.email={author_email}"]
    committed = git(*identity, "commit", "--quiet", "--no-verify", "-m", message)
    if committed.returncode != 0:
        print(f"the first commit failed ({committed.stderr.strip()}): commit by hand")
        return 0
    print(f"git repository made, first commit: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
