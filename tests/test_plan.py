"""`phi1 plan`: dedup's CPU follows the preset's shingle kind (issue 28 item 6; ast costs several times word)."""
import pytest

from phi1_nb.cli import main
from phi1_nb.core import load_config
from phi1_nb.plan import DEDUP_CPU_MS


def _dedup_cpu_hours(capsys, *args) -> tuple[float, str]:
    assert main(["plan", "--records", "35M", "--cores", "16", *args]) == 0
    out = capsys.readouterr().out
    row = next(l for l in out.splitlines() if l.startswith("| dedup |"))
    return float(row.split("|")[2].replace(",", "")), out


def test_plan_for_the_paper_preset_costs_its_shingles(capsys, tmp_path):
    "The paper preset (ast shingles) is planned at ast's CPU; a preset with word shingles at word's, several times less."
    assert load_config("paper").section("dedup")["shingles"] == "ast"
    paper, out = _dedup_cpu_hours(capsys, "--preset", "paper")
    assert "dedup with ast shingles" in out and "ast shingles:" in out
    assert paper == pytest.approx(35e6 * DEDUP_CPU_MS["ast"] / 3.6e6, abs=0.06)
    (tmp_path/"words.yaml").write_text("dedup:\n  shingles: word\n")
    word, out = _dedup_cpu_hours(capsys, "--preset", str(tmp_path/"words.yaml"))
    assert "dedup with word shingles" in out and word == pytest.approx(35e6 * DEDUP_CPU_MS["word"] / 3.6e6, abs=0.06)
    assert paper > 3 * word
    assert _dedup_cpu_hours(capsys, "--preset", "paper", "--shingles", "word")[0] == word   # the flag over the preset


def test_plan_refuses_an_unknown_shingle_kind(capsys):
    assert main(["plan", "--records", "35M", "--shingles", "char"]) == 2
    assert "dedup shingles must be one of ast, word, not 'char'" in capsys.readouterr().err
