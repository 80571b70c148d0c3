"""Shared test fixtures (a tiny configuration that trains in seconds on a CPU), and strict
mode: with DIFFMEM_STRICT_TESTS=1 (set by .ci/run) a skipped test fails the run, so that a
missing reference package (torch, torchvision, pytorch-fid, POT) cannot pass CI silently."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import parallel  # noqa: E402
import train  # noqa: E402

parallel.use_fast_cpu_convolutions()  # the convolutions train.py runs (before any computation)

TINY = dict(dataset="shapes", num_train=8, num_test=16, image_size=8, base_channels=8,
            channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,), head_dim=8,
            embed_dim=32, batch_size=4, lr=1e-3, steps=6, num_evals=2, first_eval=3,
            eval_train_size=8, eval_batch=8, sample_steps=2, num_samples=8, swd_samples=8,
            feature_spaces=("pixels",), grid_samples=4, tick_seconds=0.0,
            distance_images=8, patch_size=3)


@pytest.fixture
def tiny_config(tmp_path):
    return train.Config(**TINY, run_dir=str(tmp_path / "run"), data_dir=str(tmp_path / "data"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("DIFFMEM_STRICT_TESTS") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under DIFFMEM_STRICT_TESTS=1 (CI): {reason}; install requirements-test.txt"
