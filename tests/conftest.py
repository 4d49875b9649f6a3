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
