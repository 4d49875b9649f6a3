"The Makefile's two pytest calls cover the suite: every file with a serial test is named in the serial call."
import re
from pathlib import Path

from conftest import SERIAL

ROOT = Path(__file__).resolve().parents[1]


def test_the_serial_call_names_every_serial_file():
    make = ROOT.joinpath("Makefile").read_text().replace("\\\n", " ")
    calls = [l for l in make.splitlines() if "-m pytest" in l]
    parallel, serial = [c for c in calls if "not serial" in c], [c for c in calls if "-m serial" in c]
    assert len(parallel) == len(serial) == 1 and "-n 2" in parallel[0], calls
    named = set(re.findall(r"tests/(test_\w+)\.py", serial[0]))
    assert {s.split(".py")[0] for s in SERIAL} <= named, (SERIAL, named)
