"""The synth stage finds a task's dropped shard where `core.run_task` writes it (`<kind>/dropped/<task>.<fmt>`): a task
no longer requested loses it too, and an older receipt's final ids include its dropped records."""
from phi1_nb.core import Drop, run_task
from phi1_nb.synth_resume import _final_ids
from phi1_nb.synth_run import _drop_unrequested


def _task(kdir, tid="synthetic-0000000-abcdef12"):
    recs = [dict(id="a", content="x = 1"), Drop("too_short", dict(id="b", content=""))]
    return run_task(kdir, tid, recs, iter, "jsonl", keep_dropped=True)


def test_an_unrequested_task_loses_its_dropped_shard(tmp_path):
    r = _task(tmp_path); dropped = tmp_path/"dropped"/r["dropped"]["path"]
    assert dropped.is_file() and (tmp_path/r["shard"]["path"]).is_file()
    assert _drop_unrequested(tmp_path, keep={}) == 1
    assert not dropped.exists() and not (tmp_path/r["shard"]["path"]).exists()   # seen failing: the dropped shard stayed


def test_final_ids_of_an_older_receipt_read_its_dropped_shard(tmp_path):
    r = _task(tmp_path)
    assert _final_ids(tmp_path, r) == {"a", "b"}   # seen failing: {'a'} (the dropped shard looked for beside the kept)
