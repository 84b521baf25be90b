"""The page's pure sound functions (mapping, settings, WAV and MIDI writers) under `node --test`."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).parent / "js"


def test_sound_functions_pass_node_test():
    node = shutil.which("node")
    if not node:
        if os.environ.get("CI") == "true":
            pytest.fail("node (Node.js ≥ 20) is needed for tests/js")
        pytest.skip("no node on PATH")
    files = sorted(str(p) for p in JS_TESTS.glob("*.test.js"))
    assert files, "no JS tests found"
    done = subprocess.run(
        [node, "--test", *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
