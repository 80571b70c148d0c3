"""Under CI (DIFFMEM_STRICT_TESTS=1) a skipped test fails the run: checked on a canary test
that skips on request, in a separate pytest process."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent


def test_canary():
    if os.environ.get("DIFFMEM_CANARY_SKIP") == "1":
        pytest.skip("canary: a reference package is missing")


@pytest.mark.parametrize("strict, passes", [("0", True), ("1", False)])
def test_a_skip_fails_the_run_only_in_strict_mode(strict, passes):
    env = dict(os.environ, DIFFMEM_CANARY_SKIP="1", DIFFMEM_STRICT_TESTS=strict)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          f"{TESTS / 'test_strict_mode.py'}::test_canary"], env=env, capture_output=True, text=True,
                         cwd=TESTS.parent, timeout=120)
    assert (run.returncode == 0) == passes, run.stdout[-2000:]
    assert ("1 skipped" in run.stdout) == passes
    if not passes:
        assert "skipped under DIFFMEM_STRICT_TESTS=1 (CI): Skipped: canary: a reference package" in run.stdout
