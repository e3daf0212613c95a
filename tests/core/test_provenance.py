"""advx.provenance.code_version: the commit of a checkout, dirty only for changed Python."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from advx import __version__
from advx.provenance import code_version

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(folder, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
                          cwd=folder, check=True, capture_output=True, text=True).stdout.strip()


def test_code_version_names_the_commit_and_only_python_changes_make_it_dirty(tmp_path):
    assert code_version(tmp_path) == f"advx {__version__}"  # not a checkout
    git(tmp_path, "init", "-q")
    (tmp_path / "model.py").write_text("x = 1\n")
    (tmp_path / "notes.md").write_text("a\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "start")
    sha = git(tmp_path, "rev-parse", "--short", "HEAD")
    assert code_version(tmp_path) == f"advx {__version__} git {sha}"
    (tmp_path / "notes.md").write_text("b\n")  # docs, ledgers: not the code
    (tmp_path / "new.py").write_text("y = 2\n")  # untracked: not part of the checkout's code
    assert code_version(tmp_path) == f"advx {__version__} git {sha}"
    (tmp_path / "model.py").write_text("x = 2\n")
    assert code_version(tmp_path) == f"advx {__version__} git {sha}-dirty"
