"""twins.py: the paired similarity against closed forms, twins checked to be twins, and a model
compared with itself (its samples under another data_offset) at similarity 1."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

import sweep
import twins
from conftest import TINY


def test_paired_similarity_is_the_pixel_correlation():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (5, 4, 4, 3)), rng.integers(0, 256, (5, 4, 4, 3))
    np.testing.assert_allclose(twins.paired_similarity(a, a), 1.0)
    np.testing.assert_allclose(twins.paired_similarity(a, 2 * a + 7), 1.0)  # a palette shift is no difference
    np.testing.assert_allclose(twins.paired_similarity(a, 255 - a), -1.0)
    expected = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]
    np.testing.assert_allclose(twins.paired_similarity(a, b), expected)


def fake_run(path, offset, samples, mem):
    """A run directory as train.py leaves it, with stored samples at steps 3 and 6."""
    (path / "samples").mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(dict(TINY, data_offset=offset, run_dir=str(path))))
    for step, images in zip((3, 6), samples):
        np.savez(path / "samples" / f"step_{step:07d}.npz", samples=images, ratio_pixels=np.ones(len(images)),
                 nearest_pixels=images)
    np.savez(path / "log.npz", step=[3, 6], train_loss=[1.0, 0.9], test_loss=[1.1, 1.0], sample_step=[3, 6],
             mem_ratio_pixels=mem, swd_pixels_test=[0.2, 0.1])


def test_a_model_compared_with_itself_has_similarity_one_and_non_twins_are_refused(tmp_path):
    samples = np.random.default_rng(1).integers(0, 256, (2, 6, 8, 8, 3), dtype=np.uint8)
    fake_run(tmp_path / "run", 0, samples, [0.0, 0.5])
    fake_run(tmp_path / "same", TINY["num_train"], samples, [0.0, 0.5])  # the same samples, as its twin
    result = twins.save_comparison(tmp_path / "run", tmp_path / "same")
    assert result["step"].tolist() == [3, 6]
    np.testing.assert_allclose(result["similarity"], 1.0)
    assert np.all(result["similarity_chance"] < 0.5)  # random images of different noises
    assert result["mem"].tolist() == [0.0, 0.5] == result["mem_twin"].tolist()
    assert (tmp_path / "run" / "twins.npz").exists() and (tmp_path / "run" / "figures" / "twins.png").exists()
    shutil.copytree(tmp_path / "run", tmp_path / "overlap")
    config = json.loads((tmp_path / "overlap" / "config.json").read_text())
    (tmp_path / "overlap" / "config.json").write_text(json.dumps(dict(config, data_offset=3)))
    with pytest.raises(twins.TwinError, match="overlap .*the twin of a run takes --data_offset 8"):
        twins.compare(tmp_path / "run", tmp_path / "overlap")
    (tmp_path / "overlap" / "config.json").write_text(json.dumps(dict(config, data_offset=8, lr=0.5)))
    with pytest.raises(twins.TwinError, match="they differ in lr"):
        twins.compare(tmp_path / "run", tmp_path / "overlap")


def test_a_twin_sweep_trains_each_run_on_the_next_n_images(tmp_path):
    runs = sweep.run_configs("cpu", "data", tmp_path, {})
    for (name, cfg), (twin_name, twin) in zip(runs, sweep.twin_configs(runs)):
        assert twin_name == f"{name}_twin" and twin.data_offset == cfg.num_train
        assert dataclasses.replace(twin, data_offset=0, run_dir=cfg.run_dir) == cfg
