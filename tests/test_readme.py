from pathlib import Path

from vitc.export import markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_capability_table_comes_from_the_registry():
    text = README.read_text()
    assert markdown_table() in text, "README's target table is stale: paste vitc.export.markdown_table() output"


def test_readme_commands_match_ci():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in text and "make test" in ci and "make demo" in text


def test_docs_list_every_bad_input_case():
    from test_bad_input import CASES

    text = (README.parent / "docs" / "reliability.md").read_text()
    missing = [c.name for c in CASES if f"| {c.name} |" not in text]
    assert not missing, f"docs/reliability.md's mistakes table lacks: {missing}"
    assert len(CASES) >= 20


def test_readme_is_a_front_page():
    """At most ~150 lines; every local link in it points at a file that exists."""
    import re

    text = README.read_text()
    assert len(text.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [x for x in links if not x.startswith("http")]
    assert len(local) >= 8 and all((README.parent / x).exists() for x in local), [
        x for x in local if not (README.parent / x).exists()
    ]
