"""The repository stands alone: no tracked file outside the tests cites the design files
a clone does not have (`../shared/…`, "DESIGN §…"). Clients and operators read docs/."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CITATIONS = ("../shared", "DESIGN §")


def _tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name]


def citations(paths: list[Path], root: Path) -> list[str]:
    """`<file>: <citation>` for every citation in the text files among `paths`."""
    found = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images
        found += [f"{path.relative_to(root)}: {c}" for c in CITATIONS if c in text]
    return found


def test_no_file_outside_the_tests_cites_the_design_files():
    files = [p for p in _tracked_files() if p.parts[len(ROOT.parts)] != "tests" and p.is_file()]
    assert len(files) > 100  # the listing worked
    assert citations(files, ROOT) == []


def test_the_check_finds_a_citation(tmp_path):
    (tmp_path / "note.md").write_text("See DESIGN §6 in ../shared/DESIGN.md.\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\xff\xfe")
    (tmp_path / "plain.md").write_text("The contract is in docs/api.md.\n")

    found = citations(sorted(tmp_path.iterdir()), tmp_path)

    assert found == ["note.md: ../shared", "note.md: DESIGN §"]
