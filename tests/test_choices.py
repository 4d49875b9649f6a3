"""An engine (or another choice) is checked by one rule, config.CHOICES: the CLI, a preset and a python call refuse it
alike, in one line, before any work (issue 30, item 6: four stages had four messages)."""
import pytest

from phi1_nb.cli import main
from phi1_nb.core import ConfigError, load_config

STAGES = ["corpus", "filter", "dedup", "decontaminate"]


@pytest.mark.parametrize("stage", STAGES)
def test_cli_refuses_an_unknown_engine_in_one_line(tmp_path, capsys, stage):
    rc = main([stage, "--run-dir", str(tmp_path), "--engine", "spark"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.splitlines() == [f"phi1 {stage}: error: --{stage}.engine 'spark': expected one of local, "
                                            f"ray, like the preset's 'local'"], err
    assert not any(tmp_path.iterdir())                          # refused before the stage made anything


@pytest.mark.parametrize("stage", STAGES)
def test_a_preset_and_a_python_call_say_the_same(tmp_path, stage):
    with pytest.raises(ConfigError, match=f"--{stage}.engine 'Ray': expected one of local, ray"):
        load_config("tiny", [f"--{stage}.engine", "Ray"])
    from phi1_nb.corpus import engine_map
    from phi1_nb.decontaminate import run_decontaminate
    from phi1_nb.dedup import run_dedup
    from phi1_nb.filter import run_filter
    call = dict(corpus=lambda: engine_map("Ray"), filter=lambda: run_filter(tmp_path, engine="Ray", progress=False),
                dedup=lambda: run_dedup(tmp_path, engine="Ray"),
                decontaminate=lambda: run_decontaminate(tmp_path, engine="Ray"))[stage]
    with pytest.raises(ConfigError, match=f"{stage}.engine in [a-z_ ]+ 'Ray': expected one of local, ray$"): call()
    assert not any(tmp_path.iterdir())
