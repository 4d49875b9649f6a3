"One formatter (issue 30, item 6): a report table's cell, a displayed dict's line and a printed summary read a value alike."
import html
from phi1_nb.report import _lines, _table, readable


def test_table_line_and_summary_agree():
    v = {"drops": {"too_short": 16, "ratio": 0.9428571428571428}, "ci": [0.04935675430588606, 0.0734], "bands": [21, 6]}
    want = "drops: (too_short: 16; ratio: 0.943); ci: 0.0494 to 0.0734; bands: [21, 6]"
    assert readable(v) == want
    assert f"<td>{html.escape(want)}</td>" in _table([{"value": v}])     # was `drops: too_short: 16; ...; 21 to 6`
    assert _lines({"x": v["bands"], "y": None, "z": float("nan")}) == "x: [21, 6]\ny: –\nz: –"
