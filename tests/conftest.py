"""Session fixtures shared by the test files."""
import signal, sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# A suite started in the background (`cmd &` in a script) inherits an ignored SIGINT, and so would every program the
# Ctrl-C tests start: they would never see the signal. Python's own handler here is reset to the default in each child.
signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def real_server(tmp_path_factory):
    "`transformers serve` on 127.0.0.1 with a tiny random Phi checkpoint that has a chat template (one per session)."
    from real_server import TransformersServer, build_tiny_checkpoint
    d = tmp_path_factory.mktemp("real_server")
    with TransformersServer(build_tiny_checkpoint(d/"checkpoint"), startup_timeout=180, log=d/"serve.log") as srv:
        yield srv



# `make pytest` runs the suite in two calls. First `-n 2 --dist loadscope --no-loadscope-reorder -m "not serial"`: two
# workers, each file one unit of work (its tests in order, its module fixtures built once), files that share a
# resource one unit (the launchers' rendezvous, the session's `transformers serve`), units longest first (the CI's
# durations) so that no long one starts last. Then `pytest -m serial` alone: the tests that start a Ray cluster or
# 2-rank DeepSpeed, whose startup timeouts are not met when the other worker competes for the 2 cores (seen: a Ray node
# timed out during startup, a DeepSpeed launch ran past its 300 s), and the sandbox tests that touch the whole host: two
# look at it (any process of a sandbox uid >= 1,000,000 left; the host's process count: another worker's `evaluate`
# runs such processes), two plant sockets, FIFOs and folders in the trees a sandbox binds (seen: another worker's
# sandbox found one, and bwrap failed to start when it was gone before bwrap covered it). The rest of test_sandbox.py
# runs beside the other worker: it mostly waits on its programs' timeouts (measured alone: 160 s of wall clock, 36 s
# of CPU), and it looks only at processes that carry its own tag.
# (The Makefile's second call names these files; a name below is a file, or file::test with every parametrization.)
SERIAL = {"test_distributed", "test_ray", "test_corpus_parallel.py::test_the_ray_engine_writes_the_same_bytes",
          *(f"test_sandbox.py::{t}" for t in ("test_fork_bomb_is_capped_as_root", "test_classic_fork_bomb",
                                               "test_no_host_socket_or_fifo_is_reachable",
                                               "test_a_socket_in_a_folder_the_harness_cannot_list_is_covered"))}
SHARED = {"test_launch": "launch", "test_ablation": "launch", "test_real_server": "real_server",
          "test_synth_attack": "real_server"}
LONGEST_FIRST = ["test_pipeline_e2e", "test_sandbox", "launch", "test_filter", "real_server", "test_synth", "test_dedup"]


def unit(nodeid:str) -> str:
    "The unit of work of a test: the resource its file shares, else the file."
    mod = Path(nodeid.split("::")[0]).stem
    return SHARED.get(mod, mod)


def pytest_collection_modifyitems(config, items):
    for item in items:
        f = Path(item.nodeid.split("::")[0]).name
        name = getattr(item, "originalname", item.name)   # a parametrized test's name without its [id]
        if Path(f).stem in SERIAL or f"{f}::{name}" in SERIAL: item.add_marker(pytest.mark.serial)
    order = {u: i for i, u in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(unit(item.nodeid), len(order)))   # stable: a file's own order is kept


@pytest.hookimpl(optionalhook=True)   # a run with -p no:xdist has no such hook
def pytest_xdist_make_scheduler(config, log):
    "--dist loadscope with this file's units (xdist's loadgroup marks are lost on pytest 9.2: pytest-xdist#1386)."
    if config.getvalue("dist") != "loadscope": return None
    from xdist.scheduler import LoadScopeScheduling

    class ByUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid:str) -> str: return unit(nodeid)
    return ByUnit(config, log)
