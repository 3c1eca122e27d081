"""core/sections.py: scripts that share a markdown file replace their own ``## `` section and no other."""

from __future__ import annotations

import pytest

from core.sections import get_section, replace_section


def test_a_rerun_replaces_its_section_and_keeps_the_others(tmp_path):
    path = tmp_path / "RESULTS.md"
    replace_section(path, "## Trainer", "40 tok/s", header="# Benchmark results\n")
    replace_section(path, "## Dedup", "| docs/s |\n|---|\n| 9 |")
    replace_section(path, "## Trainer", "41 tok/s\n\nmore")
    text = path.read_text()
    assert text == "# Benchmark results\n\n## Trainer\n\n41 tok/s\n\nmore\n\n## Dedup\n\n| docs/s |\n|---|\n| 9 |\n"
    assert get_section(text, "## Dedup") == "## Dedup\n\n| docs/s |\n|---|\n| 9 |\n"
    assert get_section(text, "## Planner") is None


def test_a_varying_title_is_found_by_its_key_and_duplicates_are_dropped(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# R\n\n## GPU: not run\nold\n\n## Other\nkept\n\n## GPU: not run\nolder copy\n")
    replace_section(path, "## GPU: 8,000 tok/s", "new", key="## GPU")
    assert path.read_text() == "# R\n\n## GPU: 8,000 tok/s\n\nnew\n\n## Other\nkept\n"


def test_a_heading_that_only_shares_a_prefix_with_another_line_is_not_a_section(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text("# Doc\n\ntext mentioning ## Trainer inline\n\n## Trainerless\nx\n")
    replace_section(path, "## Trainer", "y")
    assert path.read_text() == "# Doc\n\ntext mentioning ## Trainer inline\n\n## Trainerless\nx\n\n## Trainer\n\ny\n"


def test_a_title_is_one_heading_line(tmp_path):
    with pytest.raises(ValueError):
        replace_section(tmp_path / "x.md", "Trainer", "body")
    with pytest.raises(ValueError):
        replace_section(tmp_path / "x.md", "## A\n## B", "body")
