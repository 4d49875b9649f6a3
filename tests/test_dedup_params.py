"`phi1 dedup` refuses its own bad settings in one line before any work (issue 26: `--num_perm 0` was an IndexError)."
import pytest
from phi1_nb.cli import main


@pytest.mark.parametrize("opt, val, says", [("--num_perm", "0", "--dedup.num_perm 0: expected an int in [1, inf]"),
                                            ("--threshold", "1", "--dedup.threshold 1"),
                                            ("--ngram", "0", "ngram")])   # (the option-range check or ours)
def test_cli_refuses_bad_dedup_params(tmp_path, capsys, opt, val, says):
    # the run folder has no input stage: only a check made before reading the input can name the setting
    rc = main(["dedup", "--run-dir", str(tmp_path), "--input_stage", "corpus", opt, val])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and says in err and len(err.splitlines()) == 1, (rc, err)
    assert not (tmp_path / "dedup").exists()
