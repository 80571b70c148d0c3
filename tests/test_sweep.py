"""sweep.py and plot.py: the command line, and runs that have no evaluation yet (a log.npz
without rows, as a time-based checkpoint before the first evaluation could leave)."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import metrics
import plot
import rundir
import study
import sweep
import train
from conftest import TINY


def test_sweep_flags_are_its_own_and_the_configs():
    args, overrides = sweep.parse_args(["--axis", "lr", "--index", "2", "--steps", "40"])
    assert args.axis == "lr" and args.index == 2 and overrides == {"steps": 40}
    with pytest.raises(SystemExit, match="unknown flag '--stpes'"):
        sweep.parse_args(["--axis", "lr", "--stpes", "40"])
    with pytest.raises(SystemExit):
        sweep.parse_args(["--axis", "size"])  # argparse: invalid choice


def test_runs_of_an_axis_share_a_normalized_step_budget(tmp_path):
    runs = sweep.run_configs("cpu", "batch", tmp_path, {})
    field, values, _ = study.AXES["cpu"]["batch"]
    assert [cfg.batch_size for _, cfg in runs] == list(values)
    images = {cfg.steps * cfg.batch_size for _, cfg in runs}  # T = step * B / B_min: same images
    assert max(images) / min(images) < 1.01
    mins = sweep.axis_minima("cpu")
    for axis in study.AXES["cpu"]:  # every run of every axis ends at the same normalized step T
        ends = [metrics.normalized_step(cfg.steps, dataclasses.asdict(cfg), mins)
                for _, cfg in sweep.run_configs("cpu", axis, tmp_path, {})]
        assert max(ends) / min(ends) < 1.01, axis


def test_a_sweep_never_skips_a_run_directory_that_holds_another_config(tmp_path):
    name, cfg = sweep.run_configs("cpu", "model", tmp_path, dict(TINY, dataset="shapes"))[0]
    rundir.write_config(cfg.run_dir, dataclasses.asdict(cfg))
    rundir.save_checkpoint(cfg.run_dir, {"['step']": np.array(1, np.int32)}, {}, 0.0)
    assert not sweep.is_complete(cfg)  # its own run, not finished
    other = dataclasses.replace(cfg, norm_groups=32)  # the same sweep with --norm_groups 32
    with pytest.raises(rundir.RunDirError, match=r"another config \(norm_groups: 0 -> 32\); give this sweep another --out"):
        sweep.is_complete(other)


def test_runs_without_evaluations_are_skipped_by_summary_and_plots(tmp_path, capsys):
    runs = sweep.run_configs("cpu", "batch", tmp_path, dict(TINY, dataset="shapes"))
    name, cfg = runs[0]
    Path(cfg.run_dir).mkdir(parents=True)
    (Path(cfg.run_dir) / "config.json").write_text(json.dumps(train.dataclasses.asdict(cfg)))
    np.savez(Path(cfg.run_dir) / "log.npz")  # a log with no keys at all
    assert not sweep.is_complete(cfg)
    assert sweep.summarize(runs, tmp_path, "batch_size", {}) == []
    (tmp_path / "sweep.json").write_text(json.dumps({"preset": "cpu", "axis": "batch", "field": "batch_size",
                                                     "runs": [n for n, _ in runs], "normalization": {}}))
    plot.plot_sweep(tmp_path)
    plot.plot_run(cfg.run_dir)
    assert "no evaluation yet" in capsys.readouterr().out


def test_damaged_logs_samples_and_caches_are_named_or_repaired(tmp_path, capsys):
    import evaluate

    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "log.npz").write_bytes(b"")  # zero bytes, as a full disk leaves
    with pytest.raises(metrics.LogError, match=r"log.npz is damaged .*python train.py --run_dir .* rewrites it"):
        metrics.load_log(run)
    (run / "config.json").write_text("")
    with pytest.raises(metrics.LogError, match="config.json is unreadable"):
        plot.load_run(run)
    np.savez(run / "samples" / "step_0000002.npz", samples=np.zeros((2, 4, 4, 3), np.uint8))
    (run / "samples" / "step_0000001.npz").write_bytes(b"PK\x03\x04 cut short")
    assert [path.name for path, _ in plot.sample_files(run)] == ["step_0000002.npz"]
    assert "step_0000001.npz is damaged" in capsys.readouterr().out
    cache, calls = tmp_path / "cache", []
    images = np.zeros((3, 4, 4, 3), np.uint8)
    extract = lambda x: calls.append(1) or np.ones((len(x), 2), np.float32)
    evaluate.reference_features(extract, "f", images, cache)
    next(cache.iterdir()).write_bytes(b"")  # the cached features, zeroed
    np.testing.assert_array_equal(evaluate.reference_features(extract, "f", images, cache), np.ones((3, 2)))
    assert len(calls) == 2 and np.load(next(cache.iterdir())).shape == (3, 2)  # computed again, and repaired


def test_the_largest_lr_of_each_lr_axis_gets_at_least_half_the_presets_steps(tmp_path):
    for preset in ("paper", "cpu"):
        runs = sweep.run_configs(preset, "lr", tmp_path, {})
        largest = max(runs, key=lambda run: run[1].lr)[1]
        assert largest.steps >= train.make_config(study.PRESETS[preset]).steps / 2, preset
