"""The README's two commands are what a new user runs; CI must run the same test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "README must start with a sh code block"
    return [line.strip() for line in block.group(1).strip().splitlines()]


def test_first_lines_are_setup_plus_restore_and_setup_plus_tests():
    commands = readme_commands()
    assert len(commands) == 2
    restore, tests = commands
    assert restore.startswith("scripts/bootstrap.sh") and " restore samples/" in restore
    sample = restore.split(" restore ")[1].split()[0]
    assert (ROOT / sample).is_file(), f"README restores {sample}, which is not in the repository"
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci/run").read_text()
    assert readme_commands()[1] in ci
