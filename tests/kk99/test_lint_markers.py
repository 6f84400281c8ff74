"""Every `# noqa` left in the tree says why (issue 10, item 6). Ruff's RUF100 (pyproject.toml)
already fails on a marker that silences nothing; this holds the ones that remain to a reason."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A marker names its rules, then a dash or a parenthesis and the reason.
_WITH_REASON = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*\s*(?:[—–-]\s*\S|\(\s*\S)")
_MARKER = re.compile(r"#\s*noqa\b")


def markers_without_reason(lines: dict[str, str]) -> list[str]:
    return [where for where, line in lines.items() if _MARKER.search(line) and not _WITH_REASON.search(line)]


def _tracked_python_lines() -> dict[str, str]:
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    out = {}
    for rel in files:
        path = ROOT / rel
        if rel == "tests/kk99/test_lint_markers.py" or not path.exists():  # this file quotes markers as data
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "noqa" in line:
                out[f"{rel}:{n}"] = line
    return out


def test_a_bare_or_code_only_marker_is_found():
    sample = {
        "a.py:1": "import x  # noqa",
        "a.py:2": "import y  # noqa: F401",
        "a.py:3": "import z  # noqa: F401, E402",
        "a.py:4": "import w  # noqa: F401 — registers the admin",
        "a.py:5": "import v  # noqa: E402 (after django.setup())",
    }
    assert markers_without_reason(sample) == ["a.py:1", "a.py:2", "a.py:3"]


def test_every_noqa_in_the_tree_says_why():
    assert markers_without_reason(_tracked_python_lines()) == []
