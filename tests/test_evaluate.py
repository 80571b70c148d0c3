"""evaluate.py: the reference-feature cache and what it is keyed on; the normalized gap; the
fidelity yardsticks of the exact references."""
import dataclasses
import shutil
import threading
from pathlib import Path

import jax
import numpy as np
import pytest

import convnets
import data
import evaluate
import features
import ideal
import parallel


def counting(extract):
    calls = []

    def wrapped(images):
        calls.append(len(images))
        return extract(images)
    return wrapped, calls


def test_reference_features_are_cached_by_fingerprint_and_images(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), np.uint8)
    extract, calls = counting(lambda x: x.reshape(len(x), -1).astype(np.float32))
    first = evaluate.reference_features(extract, "fingerprint-a", images, tmp_path)
    again = evaluate.reference_features(extract, "fingerprint-a", images, tmp_path)
    np.testing.assert_array_equal(first, again)
    assert calls == [5]  # the second came from the cache
    evaluate.reference_features(extract, "fingerprint-b", images, tmp_path)  # other weights or code
    other = images.copy()
    other[0, 0, 0, 0] ^= 1
    evaluate.reference_features(extract, "fingerprint-a", other, tmp_path)  # other images
    assert calls == [5, 5, 5]


def test_fingerprint_follows_the_weights_and_the_code(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    state = convnets.random_torch_state("sscd")
    np.savez(features.weight_paths("sscd", weights)[1], **state)
    before = features.fingerprint("sscd", weights)
    assert features.fingerprint("sscd", weights) == before
    assert features.fingerprint("sscd", weights, resize_to=96) != before
    state["fc.bias"] = state["fc.bias"] + 1  # other weights under the same file name
    np.savez(features.weight_paths("sscd", weights)[1], **state)
    changed = features.fingerprint("sscd", weights)
    assert changed != before
    edited = tmp_path / "features.py"  # the feature code edited
    shutil.copy(features.__file__, edited)
    with open(edited, "a") as file:
        file.write("\n# an edit\n")
    monkeypatch.setattr(features, "__file__", str(edited))
    assert features.fingerprint("sscd", weights) != changed


def test_two_jobs_filling_the_same_cache_at_once_both_succeed(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), np.uint8)
    barrier, results = threading.Barrier(2), []

    def slow_extract(x):
        barrier.wait()  # both jobs compute before either has written the cache
        return x.reshape(len(x), -1).astype(np.float32)

    jobs = [threading.Thread(target=lambda: results.append(
        evaluate.reference_features(slow_extract, "f", images, tmp_path))) for _ in range(2)]
    for thread in jobs:
        thread.start()
    for thread in jobs:
        thread.join()
    assert len(results) == 2
    np.testing.assert_array_equal(results[0], results[1])
    assert len(list(tmp_path.iterdir())) == 1  # one cache file, no temporary left


def test_normalized_gaps_are_fractions_of_the_memorizers_gap():
    memorizer_train = np.array([0.20, 0.10, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    memorizer_test = np.array([0.25, 0.30, 0.50, 0.60, 0.80, 1.5, 3.0, 6.0, 20.0, 1e4])
    train = np.full(10, 0.3)
    span = memorizer_test - memorizer_train
    # a network whose gap is 40% of the memorizer's in every bin of the noisier half
    test = train + np.where(np.arange(10) < 5, 0.4 * span, 0.01)
    np.testing.assert_allclose(evaluate.normalized_gap(test, train, memorizer_test, memorizer_train)[:5], 0.4)
    assert evaluate.noisy_half_gap(test, train, memorizer_test, memorizer_train) == pytest.approx(0.4)
    # noise in the noisiest bin, where the memorizer's own span is small, barely moves it
    noisy = test.copy()
    noisy[0] += 0.1  # twice that bin's whole span
    assert abs(evaluate.noisy_half_gap(noisy, train, memorizer_test, memorizer_train) - 0.4) < 0.01
    assert np.isnan(evaluate.normalized_gap(test, train, memorizer_train, memorizer_train)).all()  # no span


def test_the_yardsticks_are_what_the_exact_references_score_as_networks(tiny_config):
    """Put the memorizer (then the Gaussian fit) in the network's place: from the evaluation's
    noise and labels it makes the samples whose fidelity the log holds as the constant
    memorizer_... (gaussian_...). A run saved before the Gaussian's samples were kept gets them."""
    cfg = dataclasses.replace(tiny_config, sample_steps=25)  # enough for the memorizer's samples to be its images
    dataset = data.load(cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test, data_dir=cfg.data_dir,
                        image_size=cfg.image_size)
    images = data.to_model_range(dataset.train_images)
    networks = {"memorizer": (ideal.memorizer_velocity,
                              ideal.memorizer_params(images, dataset.train_labels, cfg.num_classes)),
                "gaussian": (ideal.gaussian_velocity, ideal.gaussian_params(images))}
    keys = [f"{m}_pixels_{split}" for m in ("swd", "fid") for split in ("train", "test")]
    rows = {}
    for name, (velocity, params) in networks.items():
        evaluate_fn = evaluate.make_evaluator(cfg, velocity, dataset, cfg.run_dir, jax.random.PRNGKey(3))
        replicated = parallel.replicate(params)  # evaluate reads the training state, replicated
        rows[name] = row = evaluate_fn({"params": replicated, "ema": replicated}, 1)
        for key in keys:
            assert row[key] == pytest.approx(row[f"{name}_{key}"], rel=1e-6), (name, key)
    assert rows["memorizer"]["mem_ratio_pixels"] == 1.0 and rows["memorizer"]["mem_memorizer_distance"] == 0.0
    assert rows["gaussian"]["swd_pixels_test"] != pytest.approx(rows["gaussian"]["memorizer_swd_pixels_test"])
    path = Path(cfg.run_dir) / "references.npz"
    with np.load(path) as f:
        saved = dict(f)
    np.savez(path, **{k: v for k, v in saved.items() if k != "gaussian_samples"})  # an older run's file
    velocity, params = networks["gaussian"]
    replicated = parallel.replicate(params)
    again = evaluate.make_evaluator(cfg, velocity, dataset, cfg.run_dir, jax.random.PRNGKey(3))(
        {"params": replicated, "ema": replicated}, 1)
    assert {key: again[f"gaussian_{key}"] for key in keys} == {key: rows["gaussian"][f"gaussian_{key}"] for key in keys}
    with np.load(path) as f:
        np.testing.assert_array_equal(f["gaussian_samples"], saved["gaussian_samples"])


def test_each_reference_in_the_networks_place_is_at_distance_zero_from_itself(tiny_config):
    """The distances of the log, with an exact reference as the network: 0 to itself, and to
    the others exactly the constants <ref>_distance_<other>_bins."""
    cfg = dataclasses.replace(tiny_config, distance_images=16, feature_spaces=())  # 16 inputs: every bin of t
    dataset = data.load(cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test, data_dir=cfg.data_dir,
                        image_size=cfg.image_size)
    images, labels = data.to_model_range(dataset.train_images), dataset.train_labels
    networks = {"memorizer": (ideal.memorizer_velocity, ideal.memorizer_params(images, labels, cfg.num_classes)),
                "gaussian": (ideal.gaussian_velocity, ideal.gaussian_params(images)),
                "patch": (ideal.patch_memorizer_velocity,
                          ideal.patch_memorizer_params(images, labels, cfg.num_classes, cfg.patch_size))}
    for name, (velocity, params) in networks.items():
        replicated = parallel.replicate(params)
        row = evaluate.make_evaluator(cfg, velocity, dataset, cfg.run_dir, jax.random.PRNGKey(3))(
            {"params": replicated, "ema": replicated}, 1, samples=False)
        np.testing.assert_allclose(row[f"distance_{name}_bins"], 0.0, atol=1e-10, err_msg=name)
        for other in set(networks) - {name}:
            assert row[f"distance_{other}_bins"].shape == (10,)
            np.testing.assert_allclose(row[f"distance_{other}_bins"], row[f"{name}_distance_{other}_bins"],
                                       rtol=1e-6, err_msg=f"{name} -> {other}")
            assert np.all(row[f"distance_{other}_bins"] > 1e-6)  # the references differ in every bin
        assert row["distance_seconds"] > 0 and row["distance_references_seconds"] > 0
