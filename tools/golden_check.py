"""Shared --check logic of the text-golden generators in tools/: compare
freshly generated files with the committed ones, ignoring '#' header lines
(they name the PyTorch version, which may differ between machines)."""
from __future__ import annotations

import difflib
import sys
from pathlib import Path


def compare_text_goldens(committed_dir: Path, fresh_dir: Path, names) -> int:
    """Prints ok/MISSING/a unified diff per file; returns 1 if any differs."""
    rc = 0
    for fname in names:
        have_p = committed_dir / fname
        new = (fresh_dir / fname).read_text(encoding="utf-8").splitlines(keepends=True)
        if not have_p.exists():
            print(f"MISSING {have_p}")
            rc = 1
            continue
        have = have_p.read_text(encoding="utf-8").splitlines(keepends=True)
        content = lambda ls: [l for l in ls if not l.startswith("#")]  # noqa: E731
        if content(have) == content(new):
            note = "" if have == new else f" (header differs only: {have[0].strip()!r} vs {new[0].strip()!r})"
            print(f"ok {have_p}{note}")
            continue
        rc = 1
        sys.stdout.writelines(difflib.unified_diff(have, new, str(have_p), f"regenerated/{fname}"))
    return rc
