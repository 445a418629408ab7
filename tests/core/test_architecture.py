"""The house rules a reader relies on: rooms a newcomer can read as a map."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "termdeposit"
#: Past this many lines a module is split by concern or says at its top why it stays one.
MAX_LINES = 600


def test_long_modules_say_why_they_stay_one_module():
    unexplained = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if "Size:" not in docstring:
            unexplained.append(f"{path.relative_to(PACKAGE.parent)} ({text.count(chr(10))} lines)")
    assert not unexplained, "split these or say why at the top ('Size: ...'): " + ", ".join(
        unexplained
    )
