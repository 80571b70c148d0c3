"""ideal.py against brute force and closed forms: the memorizer's posterior, its samples
(training images, of the class asked for), the Gaussian reference's formula and transport,
stability at t = 0 and t = 1, and the copy detectors calibrated on the memorizer."""
import jax.numpy as jnp
import numpy as np

import data
import flow
import ideal
import metrics

NULL = 3  # three classes, 0..2; label 3 is the null label


def brute_force_velocity(train, labels, x_t, t, y):
    """(E[x | x_t] - x_t) / (1 - t) by Bayes' rule over the training images, float64, one
    sample at a time."""
    out = []
    for x, s, label in zip(x_t.reshape(len(x_t), -1), t, y):
        allowed = np.ones(len(train), bool) if label == NULL else labels == label
        log_w = -((x - s * train) ** 2).sum(axis=1) / (2 * (1 - s) ** 2)
        log_w = np.where(allowed, log_w, -np.inf)
        w = np.exp(log_w - log_w.max())
        out.append(((w / w.sum()) @ train - x) / (1 - s))
    return np.array(out)


def test_memorizer_matches_brute_force_posterior_across_chunks():
    rng = np.random.default_rng(0)
    train = rng.standard_normal((5, 2))  # 5 images of 1x1x2 "pixels"
    labels = np.array([0, 1, 0, 2, 1])
    params = ideal.memorizer_params(train.reshape(5, 1, 1, 2), labels, num_classes=3, chunk=2)  # 3 chunks, padded
    x_t = rng.standard_normal((8, 1, 1, 2))
    t = np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.6])
    y = np.array([0, 1, 2, NULL, 0, 1, NULL, 2])
    got = ideal.memorizer_velocity(params, jnp.asarray(x_t, jnp.float32), jnp.asarray(t, jnp.float32), jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(got).reshape(8, 2), brute_force_velocity(train, labels, x_t, t, y),
                               rtol=1e-4, atol=1e-4)


def test_memorizer_is_finite_at_both_ends_of_time():
    rng = np.random.default_rng(1)
    train = rng.standard_normal((7, 4, 4, 3))
    params = ideal.memorizer_params(train, rng.integers(0, 3, 7), num_classes=3, chunk=3)
    x_t = jnp.asarray(rng.standard_normal((5, 4, 4, 3)), jnp.float32)
    t = jnp.array([0.0, 1e-7, 0.5, 1 - 1e-7, 1.0])
    v = ideal.memorizer_velocity(params, x_t, t, jnp.array([0, 1, 2, NULL, 1]))
    assert np.isfinite(np.asarray(v)).all()
    # at t = 0 nothing is known: the velocity points to the mean of the (here: all) images
    v0 = ideal.memorizer_velocity(params, x_t[:1], jnp.zeros(1), jnp.array([NULL]))
    np.testing.assert_allclose(np.asarray(v0)[0], train.mean(axis=0) - np.asarray(x_t[0]), rtol=1e-4, atol=1e-4)


def test_memorizer_with_one_image_carries_every_noise_to_it():
    image = np.random.default_rng(2).uniform(-1, 1, (1, 4, 4, 3)).astype(np.float32)
    params = ideal.memorizer_params(image, np.array([0]), num_classes=3)
    noise = np.random.default_rng(3).standard_normal((6, 4, 4, 3)).astype(np.float32)
    out = flow.sample(ideal.memorizer_velocity, params, noise, jnp.array([0, 1, 2, NULL, 0, 0]), steps=7,
                      null_label=NULL)
    np.testing.assert_allclose(np.asarray(out), np.broadcast_to(image, out.shape), atol=1e-5)


def test_memorizer_samples_are_training_images_of_their_class():
    rng = np.random.default_rng(4)
    train = rng.uniform(-1, 1, (9, 4, 4, 3)).astype(np.float32)
    labels = np.arange(9) % 3
    params = ideal.memorizer_params(train, labels, num_classes=3, chunk=4)
    y = np.array([0, 1, 2, 0, 1, 2, NULL, NULL])
    out = np.asarray(flow.sample(ideal.memorizer_velocity, params, rng.standard_normal((8, 4, 4, 3)).astype(np.float32),
                                 jnp.asarray(y), steps=50, null_label=NULL))
    distances = np.sqrt(((out[:, None] - train[None]) ** 2).sum(axis=(2, 3, 4)))  # (8, 9)
    nearest = distances.argmin(axis=1)
    assert distances.min(axis=1).max() < 1e-3  # on a training image
    assert (labels[nearest[:6]] == y[:6]).all()  # of the class asked for


def test_gaussian_velocity_matches_the_matrix_formula():
    rng = np.random.default_rng(5)
    train = rng.standard_normal((40, 1, 1, 3)) @ rng.standard_normal((3, 3)) + 0.5
    params = ideal.gaussian_params(train)
    flat = train.reshape(40, 3)
    mean, cov = flat.mean(axis=0), np.cov(flat.T, bias=True)
    x_t = rng.standard_normal((4, 3))
    t = np.array([0.0, 0.3, 0.7, 0.95])
    want = []
    for x, s in zip(x_t, t):
        posterior_mean = mean + s * cov @ np.linalg.solve(s ** 2 * cov + (1 - s) ** 2 * np.eye(3), x - s * mean)
        want.append((posterior_mean - x) / (1 - s))
    got = ideal.gaussian_velocity(params, jnp.asarray(x_t.reshape(4, 1, 1, 3), jnp.float32), jnp.asarray(t, jnp.float32))
    np.testing.assert_allclose(np.asarray(got).reshape(4, 3), want, rtol=1e-4, atol=1e-4)


def test_gaussian_reference_transports_noise_to_the_training_distribution():
    rng = np.random.default_rng(6)
    mixing = np.array([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.3, 0.2, 0.3]])
    train = (rng.standard_normal((20000, 3)) @ mixing.T + [0.5, -1.0, 0.2]).reshape(-1, 1, 1, 3)
    params = ideal.gaussian_params(train)
    noise = rng.standard_normal((8000, 1, 1, 3)).astype(np.float32)
    out = np.asarray(flow.sample(ideal.gaussian_velocity, params, noise, jnp.zeros(8000, int), steps=200,
                                 null_label=NULL)).reshape(-1, 3)
    np.testing.assert_allclose(out.mean(axis=0), [0.5, -1.0, 0.2], atol=0.04)
    np.testing.assert_allclose(np.cov(out.T), mixing @ mixing.T, atol=0.05)


def test_gaussian_reference_is_finite_with_a_rank_deficient_covariance():
    train = np.random.default_rng(7).standard_normal((3, 4, 4, 3))  # 3 images in 48 dimensions
    params = ideal.gaussian_params(train)
    x_t = jnp.asarray(np.random.default_rng(8).standard_normal((3, 4, 4, 3)), jnp.float32)
    v = ideal.gaussian_velocity(params, x_t, jnp.array([0.0, 0.5, 1.0]))
    assert np.isfinite(np.asarray(v)).all()


def test_copy_detectors_call_memorizer_samples_copies_and_test_images_novel():
    """The pixel-ratio criterion, calibrated: the perfect memorizer's samples are copies,
    held-out images are not."""
    ds = data.load_shapes(num_train=32, num_test=64, size=8)
    train = data.to_model_range(ds.train_images)
    params = ideal.memorizer_params(train, ds.train_labels, num_classes=10, chunk=16)
    rng = np.random.default_rng(9)
    labels = ds.train_labels[rng.integers(0, 32, 64)]
    samples = flow.sample(ideal.memorizer_velocity, params, rng.standard_normal((64, 8, 8, 3)).astype(np.float32),
                          jnp.asarray(labels), steps=25, null_label=10)
    memorized, _ = metrics.nearest_neighbour_ratio(data.to_uint8(samples), ds.train_images)
    held_out, _ = metrics.nearest_neighbour_ratio(ds.test_images, ds.train_images)
    assert metrics.copy_fraction(memorized) >= 0.95
    assert metrics.copy_fraction(held_out) <= 0.05


def brute_force_patch_velocity(train, labels, x_t, t, y, k):
    """The patch memorizer pixel by pixel, float64: pixel p reads the k x k window of x_t whose
    top-left corner is clip(p - k // 2, 0, H - k), weighs every k x k patch of every allowed
    training image by Bayes' rule, and takes the posterior mean at p's place in the window."""
    n, h, w, c = train.shape
    patches, patch_labels = [], []
    for image, label in zip(train, labels):
        for i in range(h - k + 1):
            for j in range(w - k + 1):
                patches.append(image[i:i + k, j:j + k].ravel())
                patch_labels.append(label)
    patches, patch_labels = np.array(patches), np.array(patch_labels)
    out = np.zeros(x_t.shape)
    for b in range(len(x_t)):
        allowed = patch_labels == y[b] if y[b] in labels else np.ones(len(patches), bool)  # no such image: all
        for p in range(h):
            for q in range(w):
                top, left = min(max(p - k // 2, 0), h - k), min(max(q - k // 2, 0), w - k)
                window = x_t[b, top:top + k, left:left + k].ravel()
                log_w = np.where(allowed, -((window - t[b] * patches) ** 2).sum(axis=1) / (2 * (1 - t[b]) ** 2), -np.inf)
                weights = np.exp(log_w - log_w.max())
                mean = ((weights / weights.sum()) @ patches).reshape(k, k, c)
                out[b, p, q] = (mean[p - top, q - left] - x_t[b, p, q]) / (1 - t[b])
    return out


def test_patch_memorizer_matches_brute_force_across_chunks():
    rng = np.random.default_rng(1)
    train = rng.standard_normal((3, 4, 4, 2))
    labels = np.array([0, 1, 0])
    x_t = rng.standard_normal((4, 4, 4, 2))
    t = np.array([0.2, 0.5, 0.8, 0.6])
    y = np.array([0, 1, NULL, 2])  # class 2 has no image: every patch
    params = ideal.patch_memorizer_params(train, labels, num_classes=3, patch_size=3, chunk=5)  # 12 patches, 3 chunks
    got = ideal.patch_memorizer_velocity(params, jnp.asarray(x_t, jnp.float32), jnp.asarray(t, jnp.float32),
                                         jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(got), brute_force_patch_velocity(train, labels, x_t, t, y, 3),
                               rtol=1e-4, atol=1e-4)


def test_patch_memorizer_with_the_whole_image_as_its_patch_is_the_memorizer():
    rng = np.random.default_rng(2)
    train, labels = rng.standard_normal((6, 4, 4, 3)), np.array([0, 1, 2, 0, 1, 2])
    x_t, t, y = rng.standard_normal((5, 4, 4, 3)), np.array([0.1, 0.4, 0.6, 0.9, 0.99]), np.array([0, 1, 2, NULL, 0])
    args = jnp.asarray(x_t, jnp.float32), jnp.asarray(t, jnp.float32), jnp.asarray(y)
    patch = ideal.patch_memorizer_velocity(ideal.patch_memorizer_params(train, labels, 3, patch_size=4), *args)
    whole = ideal.memorizer_velocity(ideal.memorizer_params(train, labels, 3), *args)
    np.testing.assert_allclose(np.asarray(patch), np.asarray(whole), rtol=1e-4, atol=1e-4)


def test_relative_distance_by_bin_against_closed_forms():
    rng = np.random.default_rng(3)
    t = np.array([0.05, 0.15, 0.17, 0.95, 1.0])  # bins 0, 1, 1, 9, 9; bins 2..8 empty
    v_ref = rng.standard_normal((5, 2, 2, 1))
    distance = ideal.relative_distance_by_bin(3 * v_ref, v_ref, t)  # |2 v|^2 / |v|^2 = 4 in every bin
    np.testing.assert_allclose(distance[[0, 1, 9]], 4.0)
    assert np.isnan(distance[2:9]).all()
    # one training image: its Gaussian fit (zero covariance) and the memorizer are the same
    # denoiser, (x_1 - x_t) / (1 - t), so each is at distance 0 from the other
    image = rng.standard_normal((1, 4, 4, 3))
    x_t, t = rng.standard_normal((10, 4, 4, 3)), rng.uniform(0, 0.95, 10)
    args = jnp.asarray(x_t, jnp.float32), jnp.asarray(t, jnp.float32), jnp.full(10, NULL)
    gaussian = ideal.gaussian_velocity(ideal.gaussian_params(image), *args)
    memorizer = ideal.memorizer_velocity(ideal.memorizer_params(image, np.array([0]), 3), *args)
    assert np.nanmax(ideal.relative_distance_by_bin(gaussian, memorizer, t)) < 1e-6
    assert np.nanmax(ideal.relative_distance_by_bin(memorizer, memorizer, t)) == 0.0
