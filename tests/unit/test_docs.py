"""The documentation: the MkDocs site builds in strict mode, and the README's links lead somewhere.

A broken link, a link to a missing anchor, or a page left out of the nav fails here, in `make test`,
as it fails `make docs`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from markdown.extensions.toc import slugify

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
MKDOCS_YML = REPO_ROOT / "mkdocs.yml"
MAX_README_LINES = 200

# [text](target) outside code: good enough for our Markdown, which has no nested brackets in links.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def build_site(project: Path, site_dir: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``project``'s mkdocs.yml into ``site_dir`` (never -q: it hides warnings)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(project / "mkdocs.yml"),
         "--site-dir", str(site_dir)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )


def nav_pages() -> list[str]:
    pages: list[str] = []
    for entry in yaml.safe_load(MKDOCS_YML.read_text())["nav"]:
        pages.extend(entry.values() if isinstance(entry, dict) else [entry])
    return pages


def anchors_of(markdown_file: Path) -> set[str]:
    text = FENCE.sub("", markdown_file.read_text(encoding="utf-8"))
    return {slugify(re.sub(r"[`*]", "", title), "-") for title in HEADING.findall(text)}


def test_docs_site_builds_in_strict_mode_with_every_page(tmp_path):
    result = build_site(REPO_ROOT, tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    for page in nav_pages():
        built = tmp_path / "site" / ("index.html" if page == "index.md" else f"{Path(page).stem}/index.html")
        assert built.is_file(), f"{page} was not built"
    assert sorted(nav_pages()) == sorted(p.name for p in (REPO_ROOT / "docs").glob("*.md"))


def test_strict_build_fails_on_a_broken_link(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO_ROOT / "docs", project / "docs")
    shutil.copy(MKDOCS_YML, project / "mkdocs.yml")
    with (project / "docs" / "data.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [the missing page](missing.md) and [a missing anchor](doors.md#no-such-section).\n")

    result = build_site(project, tmp_path / "site")

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "missing.md" in output and "no-such-section" in output, output


def test_readme_links_point_at_files_and_headings_that_exist():
    text = FENCE.sub("", README.read_text(encoding="utf-8"))
    links = [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]
    assert links, "the README links to no docs"
    broken = []
    for target in links:
        path, _, anchor = target.partition("#")
        file = (REPO_ROOT / path) if path else README
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors_of(file):
            broken.append(f"{target}: no heading with that anchor in {file.relative_to(REPO_ROOT)}")
    assert not broken, "README.md has broken links:\n" + "\n".join(broken)


def test_readme_stays_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move details to docs/ (at most {MAX_README_LINES})"
