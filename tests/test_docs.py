"""The documentation's relative links resolve (README.md, docs/, benchmarks/, examples/)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted((ROOT / "benchmarks").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page."""
    out = set()
    for line in page.read_text().splitlines():
        if m := re.match(r"#+ (.*)", line):
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target, anchor in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path = (page.parent / target).resolve()
        assert path.exists(), f"{page.name}: link to {target} does not resolve"
        if anchor and path.suffix == ".md":
            assert anchor[1:] in anchors(path), f"{page.name}: no heading {anchor} in {target}"


def test_the_readme_opens_with_a_quickstart_of_ten_lines():
    text = (ROOT / "README.md").read_text()
    part = text.split("## Quickstart\n")[1].split("\n## ")[0]
    code = [l for block in re.findall(r"```\w*\n(.*?)```", part, re.S)
            for l in block.splitlines() if l.strip()]
    assert len(code) <= 10 and text.index("## Quickstart") < text.index("## Set-up")
