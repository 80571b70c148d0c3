"""docs/walkthrough.py runs as a plain script, at tiny settings, and writes its figures."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = ["training_images", "reference_losses", "losses", "samples_by_step", "gap_by_noise", "distances",
           "neighbours"]


def test_the_walkthrough_runs_as_a_script_and_saves_its_figures(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "walkthrough.py")], cwd=tmp_path,
                          env={**os.environ, "DIFFMEM_WALKTHROUGH_TINY": "1", "DIFFMEM_WALKTHROUGH_DIR": str(run_dir)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in FIGURES:
        assert (run_dir / "walkthrough" / f"{name}.png").stat().st_size > 1000, name
    # the memorizer's samples are training images: every one a copy by the pixel criterion
    ratios = next(line for line in proc.stdout.splitlines() if line.startswith("nearest-neighbour ratio"))
    assert all(float(r) < 1 / 3 for r in ratios.split(":")[1].strip(" []").split())
    assert (run_dir / "log.npz").exists() and "tau_mem" in proc.stdout
