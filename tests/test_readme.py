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


def test_readme_lists_every_bad_input_case():
    from test_bad_input import CASES

    text = README.read_text()
    missing = [c.name for c in CASES if f"| {c.name} |" not in text]
    assert not missing, f"README's mistakes table lacks: {missing}"
    assert len(CASES) >= 20
