"""evaluate.py: the reference-feature cache and what it is keyed on."""
import shutil
import threading

import numpy as np
import pytest

import evaluate
import features


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
    state = features.random_torch_state("sscd")
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
