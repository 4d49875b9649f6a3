"Every numeric option of dedup, filter and decontaminate with a valid range: one line, exit 2, before any work (issue 28)."
import pytest

from phi1_nb.cli import main
from phi1_nb.core import ConfigError, load_config

BAD = [("dedup", "num_perm", "0"), ("dedup", "num_perm", "-5"), ("dedup", "threshold", "0"), ("dedup", "threshold", "1.5"), ("dedup", "threshold", "1"),
       ("dedup", "ngram", "0"), ("dedup", "batch_size", "0"), ("dedup", "ray_actors", "0"),
       ("filter", "n_labels", "0"), ("filter", "pool_size", "0"), ("filter", "n_estimators", "0"),
       ("filter", "val_frac", "1"), ("filter", "threshold", "nan"), ("filter", "near_dup_threshold", "0"),
       ("filter", "concurrency", "0"), ("filter", "token_budget", "0"),
       ("decontaminate", "tau", "2"), ("decontaminate", "tau", "0"), ("decontaminate", "taus", "0.9,0"),
       ("decontaminate", "taus", "abc"), ("decontaminate", "ngram", "0"), ("decontaminate", "doc_coverage", "1.5"),
       ("decontaminate", "min_match_rate", "-0.1"), ("corpus", "workers", "0"), ("corpus", "files_per_shard", "0")]


@pytest.mark.parametrize("stage,key,value", BAD)
def test_out_of_range_option_is_one_line_before_any_work(tmp_path, capsys, stage, key, value):
    rc = main([stage, "--run-dir", str(tmp_path), f"--{key}", value])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith(f"phi1 {stage}: error:"), err
    assert f"{stage}.{key}" in err and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())                          # refused before the stage made anything


@pytest.mark.parametrize("stage,key,value", BAD[:6] + BAD[15:19])
def test_out_of_range_in_a_pipeline_config(stage, key, value):
    with pytest.raises(ConfigError, match=f"{stage}.{key}"):
        load_config("tiny", [f"--{stage}.{key}", value])


def test_the_ends_that_fit():
    cfg = load_config("tiny", ["--dedup.num_perm", "1", "--dedup.threshold", "0.99", "--decontaminate.taus", "1,0.5",
                               "--filter.val_frac", "0.5", "--decontaminate.doc_coverage", "0"])
    assert (cfg.dedup.num_perm, cfg.dedup.threshold, cfg.decontaminate.taus) == (1, 0.99, [1.0, 0.5])


def test_stage_functions_check_their_own_arguments(tmp_path):
    "Called from Python (a notebook, the Ray engine), the filter and decontaminate stages refuse what the CLI refuses."
    from phi1_nb.decontaminate import run_decontaminate
    from phi1_nb.filter import run_filter
    with pytest.raises(ConfigError, match=r"filter.n_labels in the call 0: expected an int in \[1, inf\]"):
        run_filter(tmp_path, n_labels=0, progress=False)
    with pytest.raises(ConfigError, match=r"decontaminate.taus in the call \[0.9, 0\]"):
        run_decontaminate(tmp_path, taus=(0.9, 0))
    with pytest.raises(ConfigError, match="no tau to report"): run_decontaminate(tmp_path, taus=())
    assert not any(tmp_path.iterdir())
