"A malformed or empty benchmark is refused whole, in one line naming file:line and the field, before any work (issue 28)."
import json

import pytest

from phi1_nb.cli import main
from phi1_nb.core import write_manifest, write_shard

GOOD = json.dumps({"task_id": "x/1", "prompt": "def f(a):\n    'Add one.'\n", "canonical_solution": "    return a + 1\n"})
CASES = {"list": ("[1,2]", ":2: a benchmark record must be an object, not a list"),
         "nullprompt": (json.dumps({"prompt": None, "canonical_solution": None, "task_id": "x/2"}),
                        ":2: field 'prompt' must be a string, not null"),
         "nulltid": (json.dumps({"prompt": "def g():\n", "canonical_solution": "    pass\n", "task_id": None}),
                     ":2: field 'task_id' must be a string or an integer, not null"),
         "notjson": ("{not json", ":2: not a line of JSON"),
         "nocode": (json.dumps({"task_id": "x/2", "content": " "}), ":2: the problem's code is empty"),
         "dup": (GOOD, "task_id 'x/1' twice"),
         "empty": (None, "has no problems")}


def _run(tmp_path, capsys, bench):
    ex = tmp_path/"run"/"synth"/"exercises"
    write_manifest(ex, stage="synth", shards=[write_shard(ex/"part-00000.jsonl", [dict(id="e0", content="x = 1\n")])])
    rc = main(["decontaminate", "--run-dir", str(tmp_path/"run"), "--benchmarks", str(bench)])
    return rc, capsys.readouterr()


@pytest.mark.parametrize("case", CASES)
def test_malformed_benchmark_is_one_line_naming_file_line_and_field(tmp_path, capsys, case):
    line, want = CASES[case]
    b = tmp_path/f"{case}.jsonl"
    b.write_text("" if line is None else f"{GOOD}\n{line}\n")   # the bad record after a good one: the whole file is read
    rc, cap = _run(tmp_path, capsys, b)
    err = cap.err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("phi1 decontaminate: error:") and want in err, err
    assert line is None or f"{b}:2" in err or case == "dup", err
    assert not (tmp_path/"run"/"decontaminate").exists()       # refused before any work


def test_a_good_benchmark_still_runs(tmp_path, capsys):
    b = tmp_path/"ok.jsonl"; b.write_text(GOOD + "\n\n")
    rc, cap = _run(tmp_path, capsys, b)
    assert rc == 0 and "'in': 1" in cap.out, cap.err
