"""metrics.py against independent references: closed forms, brute force, scipy, POT, pytorch-fid."""
import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance
import scipy.stats

import metrics


def random_covariance(rng, dim, condition=10.0):
    """A well-conditioned SPD matrix with eigenvalues in [1, condition], random eigenvectors."""
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return (rotation * np.geomspace(1.0, condition, dim)) @ rotation.T


# ---------------------------------------------------------------------------------------
# FID

def test_frechet_distance_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    mean1, mean2 = rng.standard_normal(20), rng.standard_normal(20)
    variances1, variances2 = rng.uniform(0.1, 3.0, 20), rng.uniform(0.1, 3.0, 20)
    expected = np.sum((mean1 - mean2) ** 2) + np.sum(variances1 + variances2
                                                      - 2 * np.sqrt(variances1 * variances2))
    got = metrics.frechet_distance(mean1, np.diag(variances1), mean2, np.diag(variances2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_trace_sqrt_product_of_proportional_covariances_is_scaled_trace():
    # cov2 = c^2 cov1, not diagonal: sqrtm(cov1 cov2) = c cov1.
    cov = random_covariance(np.random.default_rng(1), 30)
    assert metrics.trace_sqrt_product(cov, 2.5 ** 2 * cov) == pytest.approx(2.5 * np.trace(cov), rel=1e-12)


def test_trace_sqrt_product_matches_scipy_sqrtm_on_well_conditioned_matrices():
    rng = np.random.default_rng(2)
    cov1, cov2 = random_covariance(rng, 40), random_covariance(rng, 40, condition=100.0)
    expected = np.trace(scipy.linalg.sqrtm(cov1 @ cov2)).real
    assert metrics.trace_sqrt_product(cov1, cov2) == pytest.approx(expected, rel=1e-10)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pytorch-fid passes sqrtm's `disp`
def test_frechet_distance_matches_pytorch_fid():
    fid_score = pytest.importorskip("pytorch_fid.fid_score")
    rng = np.random.default_rng(3)
    mean1, mean2 = rng.standard_normal(50), rng.standard_normal(50)
    cov1, cov2 = random_covariance(rng, 50), random_covariance(rng, 50, condition=30.0)
    expected = fid_score.calculate_frechet_distance(mean1, cov1, mean2, cov2)
    assert metrics.frechet_distance(mean1, cov1, mean2, cov2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n_samples", [500, 40])  # full rank, then rank 39 in 64 dimensions
def test_fid_of_identical_sets_is_zero(n_samples):
    features = np.random.default_rng(4).standard_normal((n_samples, 64)) * np.linspace(0.1, 3, 64) + 5
    assert abs(metrics.fid(features, features)) < 1e-8


def test_fid_rank_deficient_matches_singular_value_route():
    # Fewer samples than dimensions, features with offsets and a decaying spectrum. Reference:
    # with S1 = A A^T, S2 = B B^T (A = centered features^T / sqrt(n - 1)), the eigenvalues of
    # S1 S2 are the squared singular values of A^T B, so tr sqrtm(S1 S2) = sum svd(A^T B).
    rng = np.random.default_rng(5)
    dim, n1, n2 = 256, 60, 90
    scales = 1.0 / np.sqrt(1 + np.arange(dim))
    x = rng.standard_normal((n1, dim)) * scales + 0.4
    y = 1.2 * rng.standard_normal((n2, dim)) * scales + 0.5
    a = (x - x.mean(axis=0)).T / np.sqrt(n1 - 1)
    b = (y - y.mean(axis=0)).T / np.sqrt(n2 - 1)
    trace_sqrt = np.linalg.svd(a.T @ b, compute_uv=False).sum()
    expected = (np.sum((x.mean(axis=0) - y.mean(axis=0)) ** 2) + np.sum(a ** 2) + np.sum(b ** 2)
                - 2 * trace_sqrt)
    got = metrics.fid(x, y)
    assert isinstance(got, float) and np.isfinite(got) and got >= 0
    assert got == pytest.approx(expected, rel=1e-10)


def test_streaming_moments_equal_one_shot_statistics():
    rng = np.random.default_rng(6)
    features = (rng.standard_normal((103, 12)) * rng.uniform(0.5, 2, 12) + 3).astype(np.float32)
    moments = None
    for batch in np.split(features, [10, 11, 57]):  # uneven batches, one of a single sample
        moments = metrics.accumulate_moments(batch, moments)
    mean, cov = metrics.moments_to_statistics(moments)
    expected_cov = np.cov(features.astype(np.float64), rowvar=False)  # centred first, N - 1
    # Absolute tolerance on the covariance: sum x x^T - N mean mean^T loses ~eps * mean^2.
    tolerance = 1e-12 * np.abs(expected_cov).max()
    np.testing.assert_allclose(mean, features.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(cov, expected_cov, rtol=0, atol=tolerance)
    one_shot_mean, one_shot_cov = metrics.feature_statistics(features)
    np.testing.assert_allclose(one_shot_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(one_shot_cov, expected_cov, rtol=0, atol=tolerance)


# ---------------------------------------------------------------------------------------
# Sliced Wasserstein

def test_wasserstein_1d_p1_matches_scipy_on_unequal_counts():
    rng = np.random.default_rng(7)
    u, v = rng.standard_normal((37, 5)), rng.exponential(size=(53, 5))
    expected = [scipy.stats.wasserstein_distance(u[:, j], v[:, j]) for j in range(5)]
    np.testing.assert_allclose(metrics.wasserstein_1d(u, v, p=1), expected, rtol=1e-12)
    assert metrics.wasserstein_1d(u[:, 0], v[:, 0], p=1) == pytest.approx(expected[0], rel=1e-12)


def test_wasserstein_1d_p2_matches_quantile_integration():
    # Midpoint rule on a grid of width 1 / (7 lcm(n, m)): every cell lies inside one piece where
    # both quantile functions are constant, so the sum is the exact integral.
    rng = np.random.default_rng(8)
    u, v = rng.standard_normal(6), rng.uniform(-1, 3, 10)
    q = (np.arange(7 * 30) + 0.5) / (7 * 30)
    expected = np.mean((np.quantile(u, q, method="inverted_cdf")
                        - np.quantile(v, q, method="inverted_cdf")) ** 2)
    assert metrics.wasserstein_1d(u, v, p=2) == pytest.approx(expected, rel=1e-12)


def test_wasserstein_1d_equal_counts_is_sorted_matching():
    rng = np.random.default_rng(9)
    u, v = rng.standard_normal((50, 3)), rng.standard_normal((50, 3)) + 1
    expected = np.mean((np.sort(u, axis=0) - np.sort(v, axis=0)) ** 2, axis=0)
    np.testing.assert_allclose(metrics.wasserstein_1d(u, v, p=2), expected, rtol=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_sliced_wasserstein_matches_pot(p):
    ot = pytest.importorskip("ot")
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal((120, 10)), rng.standard_normal((85, 10)) * 1.5 + 0.3
    directions = metrics.random_directions(10, 200, seed=3)
    expected = ot.sliced_wasserstein_distance(x, y, projections=directions, p=p)
    got = metrics.sliced_wasserstein(x, y, directions=directions, p=p, directions_per_chunk=64)
    assert got == pytest.approx(expected, rel=1e-10)


def test_sliced_wasserstein_between_shifted_gaussians_closed_form():
    # x ~ N(0, I), y ~ N(shift, I): along theta both are unit Gaussians, means 0 and
    # theta.shift, so W2^2 = (theta.shift)^2 and, for the drawn directions, SW2^2 =
    # mean_k (theta_k.shift)^2 (tending to |shift|^2 / dim over random directions). Finite
    # samples add mainly 2 (theta.shift)(theta.(mean_x - mean_y)), averaging to about
    # 2 shift.(mean_x - mean_y) / dim: standard deviation 2 |shift| sqrt(1/n + 1/m) / dim
    # ~ 0.01 here; the 1-D noise-vs-noise W2^2 adds O(1/n). Tolerance: 5 standard deviations.
    rng = np.random.default_rng(11)
    dim, n, m = 4, 20000, 15000
    shift = np.array([2.0, 0.0, 0.0, 0.0])
    x, y = rng.standard_normal((n, dim)), rng.standard_normal((m, dim)) + shift
    directions = metrics.random_directions(dim, 256, seed=12)
    expected = np.mean((shift @ directions) ** 2)
    tolerance = 5 * 2 * np.linalg.norm(shift) * np.sqrt(1 / n + 1 / m) / dim
    got = metrics.sliced_wasserstein(x, y, directions=directions) ** 2
    assert abs(got - expected) < tolerance
    assert abs(expected - 1.0) > tolerance  # the drawn directions matter: not a trivial pass


def test_random_directions_are_uniform_on_the_sphere():
    # Uniform on the sphere in dim d: for any fixed unit e, (theta.e)^2 ~ Beta(1/2, (d - 1)/2).
    # Checked along an axis and a diagonal, where a merely sign- and permutation-symmetric law
    # (normalized uniform cube, say) would differ.
    dim, count = 5, 20000
    directions = metrics.random_directions(dim, count, seed=13)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=0), 1.0, rtol=1e-12)
    for axis in (np.eye(dim)[0], np.ones(dim) / np.sqrt(dim)):
        test = scipy.stats.kstest((axis @ directions) ** 2, scipy.stats.beta(0.5, (dim - 1) / 2).cdf)
        assert test.pvalue > 1e-3


def test_sliced_wasserstein_properties():
    rng = np.random.default_rng(14)
    x, y = rng.standard_normal((300, 16)), rng.standard_normal((200, 16)) + 0.5
    reference = metrics.sliced_wasserstein(x, y, n_directions=100, seed=1)
    # Permuted copies: the same points, so the same sorted projections.
    assert metrics.sliced_wasserstein(x, rng.permutation(x), n_directions=100) < 1e-12
    # Seeded: deterministic, and the seed is used.
    assert metrics.sliced_wasserstein(x, y, n_directions=100, seed=1) == reference
    assert metrics.sliced_wasserstein(x, y, n_directions=100, seed=2) != reference
    # Homogeneous and translation invariant.
    assert metrics.sliced_wasserstein(-3.7 * x, -3.7 * y, n_directions=100, seed=1) == pytest.approx(
        3.7 * reference, rel=1e-12)
    assert metrics.sliced_wasserstein(x + 9, y + 9, n_directions=100, seed=1) == pytest.approx(
        reference, rel=1e-9)
    # Chunks that do not divide the number of directions give the same value.
    for chunk in (1, 7, 99, 1000):
        assert metrics.sliced_wasserstein(x, y, n_directions=100, seed=1,
                                          directions_per_chunk=chunk) == pytest.approx(reference, rel=1e-12)


# ---------------------------------------------------------------------------------------
# Copy detection

@pytest.mark.parametrize("chunk_size", [1, 7, 50, 1000])
def test_nearest_by_cosine_matches_brute_force(chunk_size):
    rng = np.random.default_rng(15)
    generated, training = rng.standard_normal((53, 16)), rng.standard_normal((211, 16))
    cosine = (generated / np.linalg.norm(generated, axis=1, keepdims=True)) @ (
        training / np.linalg.norm(training, axis=1, keepdims=True)).T
    order = np.argsort(-cosine, axis=1)[:, :5]
    for k in (1, 2, 5):
        got_cosine, got_index = metrics.nearest_by_cosine(generated, training, k=k, chunk_size=chunk_size)
        np.testing.assert_array_equal(got_index, order[:, :k])
        np.testing.assert_allclose(got_cosine, np.take_along_axis(cosine, order[:, :k], axis=1), rtol=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 7, 13, 1000])
def test_nearest_neighbour_ratio_matches_brute_force(chunk_size):
    rng = np.random.default_rng(16)
    generated, training = rng.uniform(size=(41, 4, 4, 3)), rng.uniform(size=(97, 4, 4, 3))
    distance = scipy.spatial.distance.cdist(generated.reshape(41, -1), training.reshape(97, -1))
    order = np.argsort(distance, axis=1)[:, :2]
    nearest = np.take_along_axis(distance, order, axis=1)
    ratio, index = metrics.nearest_neighbour_ratio(generated, training, chunk_size=chunk_size)
    np.testing.assert_array_equal(index, order)
    np.testing.assert_allclose(ratio, nearest[:, 0] / nearest[:, 1], rtol=1e-9)
    got_distance, _ = metrics.nearest_by_distance(generated, training, k=2, chunk_size=chunk_size)
    np.testing.assert_allclose(got_distance, nearest, rtol=1e-9)


def test_noisy_copies_are_detected_by_both_criteria():
    rng = np.random.default_rng(17)
    training = rng.uniform(size=(100, 3072))  # pixel-like features in [0, 1]
    copied = [5, 17, 42]
    copies = training[copied] + 1e-4 * rng.standard_normal((3, 3072))
    generated = np.concatenate([copies, rng.uniform(size=(7, 3072))])
    # Cosine: the raw pixels all have mean 0.5, so compare mean-free SSCD-like features.
    cosine, index = metrics.nearest_by_cosine(generated - 0.5, training - 0.5)
    np.testing.assert_array_equal(index[:3, 0], copied)
    np.testing.assert_allclose(cosine[:3, 0], 1.0, atol=1e-6)
    assert np.all(cosine[3:, 0] < 0.2)
    assert metrics.memorization_score(cosine[:, 0]) == pytest.approx(0.3)
    ratio, index = metrics.nearest_neighbour_ratio(generated, training)
    np.testing.assert_array_equal(index[:3, 0], copied)
    assert np.all(ratio[:3] < 1e-3) and np.all(ratio[3:] > 0.8)
    assert metrics.copy_fraction(ratio) == pytest.approx(0.3)


def test_thresholds_are_strict():
    assert metrics.memorization_score([0.6, np.nextafter(0.6, 1), 0.5, 0.9]) == 0.5
    assert metrics.memorization_score([0.5, 0.9], threshold=0.95) == 0.0
    assert metrics.copy_fraction([1 / 3, np.nextafter(1 / 3, 0), 0.9]) == pytest.approx(1 / 3)


def test_exact_copy_of_a_duplicated_training_image_is_a_copy():
    training = np.random.default_rng(18).uniform(size=(5, 12))
    training[3] = training[1]
    ratio, index = metrics.nearest_neighbour_ratio(training[[1]], training)
    assert ratio[0] == 0.0 and set(index[0]) == {1, 3}


def test_ratio_needs_two_training_samples():
    with pytest.raises(ValueError, match="at least 2 training samples"):
        metrics.nearest_neighbour_ratio(np.zeros((3, 4)), np.ones((1, 4)))
    with pytest.raises(ValueError):
        metrics.nearest_by_cosine(np.ones((3, 4)), np.ones((1, 4)), k=2)


# ---------------------------------------------------------------------------------------
# Quantities read off a run's log

STEPS = np.unique(np.geomspace(100, 100000, 60).astype(int))


def loss_log(test_loss):
    return {"step": STEPS, "test_loss": np.asarray(test_loss, float)}


def test_memorization_time_is_the_vertex_of_a_test_loss_minimum():
    """A test loss that is a parabola in log(step): smoothing keeps its vertex, and the
    parabola through the three lowest evaluations finds it between evaluations."""
    vertex = 3_000.0
    curve = 0.3 + 0.02 * np.log(STEPS / vertex) ** 2
    assert metrics.memorization_time(loss_log(curve)) == pytest.approx(vertex, rel=0.02)
    # a smooth asymmetric curve: still within the evaluations around its minimum
    asym = 0.3 + np.where(STEPS < vertex, 0.05, 0.01) * np.log(STEPS / vertex) ** 2
    k = np.argmin(asym)
    assert STEPS[k - 1] <= metrics.memorization_time(loss_log(asym)) <= STEPS[k + 1]


def test_memorization_time_needs_the_test_loss_to_turn_up_for_good():
    falling = 0.3 + 0.5 * (STEPS / STEPS[0]) ** -0.3
    assert np.isnan(metrics.memorization_time(loss_log(falling)))  # still learning at the end
    late = 0.3 + 0.02 * np.log(STEPS / STEPS[-2]) ** 2  # lowest at the next-to-last evaluation
    assert np.isnan(metrics.memorization_time(loss_log(late)))
    turned = 0.3 + 0.02 * np.log(STEPS / STEPS[-6]) ** 2  # lowest 5 evaluations before the end
    assert metrics.memorization_time(loss_log(turned)) == pytest.approx(STEPS[-6], rel=0.02)
    rng = np.random.default_rng(0)
    flat = 0.3 + 0.0002 * rng.standard_normal(len(STEPS))  # a plateau, up to noise
    assert np.isnan(metrics.memorization_time(loss_log(flat)))
    early = 0.3 + 0.01 * np.log(STEPS / STEPS[0])  # rising from the first evaluation on
    assert metrics.memorization_time(loss_log(early)) == STEPS[0]


def test_memorization_time_skips_missing_evaluations():
    curve = 0.3 + 0.02 * np.log(STEPS / 3000.0) ** 2
    log = loss_log(curve)
    log["test_loss"][[5, 40]] = np.nan
    assert metrics.memorization_time(log) == pytest.approx(3000.0, rel=0.02)


@pytest.mark.parametrize("seed", range(10))
def test_memorization_time_moves_little_with_evaluation_noise(seed):
    """The same curve, at 8 evaluations per decade, measured with noise of 0.002 and of 0.001
    (an evaluation set four times as large): tau_mem moves by less than 30%."""
    rng = np.random.default_rng(seed)
    steps = np.geomspace(100, 100000, 25)
    truth = 0.3 + 0.02 * np.log(steps / 5000.0) ** 2
    taus = [metrics.memorization_time({"step": steps, "test_loss": truth + noise * rng.standard_normal(25)})
            for noise in (0.002, 0.001)]
    assert max(taus) / min(taus) < 1.3 and abs(np.log(taus[0] / 5000.0)) < np.log(1.3)


def test_smoothing_and_parabola_against_hand_values():
    np.testing.assert_allclose(metrics.smooth(np.array([1.0, 2.0, 6.0, 4.0])), [1.5, 3.0, 4.0, 5.0])
    assert metrics.parabola_vertex(np.array([0.0, 1.0, 2.0]), np.array([1.0, 0.0, 1.0])) == 1.0
    assert metrics.parabola_vertex(np.array([0.0, 1.0, 3.0]), np.array([4.0, 1.0, 1.0])) == pytest.approx(2.0)


def test_copy_onset_and_steps_of_sample_metrics():
    sample_steps = STEPS[::6]
    log = {"step": STEPS, "sample_step": sample_steps,
           "mem_ratio_pixels": np.where(sample_steps >= STEPS[30], 0.2, 0.01)}
    assert metrics.steps_of(log, "mem_ratio_pixels") is not None
    np.testing.assert_array_equal(metrics.steps_of(log, "mem_ratio_pixels"), sample_steps)
    np.testing.assert_array_equal(metrics.steps_of(log, "train_loss"), STEPS)
    assert metrics.copy_onset(log, "mem_ratio_pixels") == STEPS[30]
    assert np.isnan(metrics.copy_onset(log, "mem_ratio_pixels", fraction=0.5))
    del log["sample_step"]  # a log of one grid: samples at every evaluation
    log["mem_ratio_pixels"] = np.where(STEPS >= STEPS[30], 0.2, 0.01)
    assert metrics.copy_onset(log, "mem_ratio_pixels") == STEPS[30]


def test_memorization_rate_recovers_a_slope_per_decade():
    tau = STEPS[20]
    score = np.where(STEPS >= tau, 0.05 + 0.17 * np.log10(STEPS / tau), 0.3)  # 0.3: novelty-phase noise
    log = {"step": STEPS, "mem_sscd": score}
    assert metrics.memorization_rate(log, tau) == pytest.approx(0.17, rel=1e-10)
    rescaled = {"step": STEPS * 7, "mem_sscd": score}  # normalized steps: the same slope
    assert metrics.memorization_rate(rescaled, tau * 7) == pytest.approx(0.17, rel=1e-10)
    last_two = {"step": STEPS[-2:], "mem_sscd": [0.2, 0.5]}  # step >= tau: tau itself counts
    expected = 0.3 / np.log10(STEPS[-1] / STEPS[-2])
    assert metrics.memorization_rate(last_two, STEPS[-2]) == pytest.approx(expected, rel=1e-12)
    with_step_zero = {"step": np.r_[0, STEPS], "mem_sscd": np.r_[0.0, score]}  # log10(0): skipped
    assert metrics.memorization_rate(with_step_zero, 0) == pytest.approx(
        metrics.memorization_rate(log, 0), rel=1e-12)
    assert np.isnan(metrics.memorization_rate(log, STEPS[-1]))  # one point
    assert np.isnan(metrics.memorization_rate(log, np.nan))
    sparse = {"step": STEPS, "sample_step": STEPS[::3], "mem_sscd": score[::3]}  # on its own grid
    assert metrics.memorization_rate(sparse, tau) == pytest.approx(0.17, rel=1e-10)


def test_best_fidelity_is_the_minimum_before_tau():
    swd = np.linspace(5, 1, len(STEPS))
    swd[10] = 0.5  # best before tau
    swd[40] = 0.1  # better, but after tau
    log = {"step": STEPS, "swd_inception_test": swd}
    assert metrics.best_fidelity(log, STEPS[30]) == (0.5, STEPS[10])
    assert metrics.best_fidelity(log, STEPS[40]) == (0.1, STEPS[40])  # step <= tau: tau counts
    assert metrics.best_fidelity(log, np.nan) == (0.1, STEPS[40])


def test_tau_gen_is_the_first_step_within_a_tenth_of_the_best_before_tau():
    swd = np.linspace(5, 1, len(STEPS))
    swd[10] = 0.5  # the best before tau
    swd[40] = 0.1  # better, but after tau: not the yardstick
    log = {"step": STEPS, "swd_inception_test": swd}
    first = np.flatnonzero(swd <= 0.55)[0]  # 10% above the best: here the best itself
    assert first == 10 and metrics.generalization_time(log, STEPS[30]) == STEPS[10]
    swd[5] = 0.54  # within 10% earlier: that step
    assert metrics.generalization_time(log, STEPS[30]) == STEPS[5]
    assert metrics.generalization_time(log, np.nan) == STEPS[40]  # no tau_mem: against the best of all
    assert np.isnan(metrics.generalization_time({"step": STEPS, "swd_inception_test": np.full(len(STEPS), np.nan)},
                                                STEPS[30]))


def test_summarize_run_on_a_synthetic_log():
    log = loss_log(0.3 + 0.02 * np.log(STEPS / STEPS[25]) ** 2)
    tau = metrics.memorization_time(log)
    log["mem_sscd"] = np.where(STEPS >= STEPS[35], 0.1 + 0.4 * np.log10(STEPS / STEPS[25]), 0.0)
    log["swd_inception_test"] = (np.log10(STEPS) - np.log10(STEPS[20])) ** 2 + 1.0
    summary = metrics.summarize_run(log)
    assert tau == pytest.approx(STEPS[25], rel=0.02)
    assert summary["tau_mem"] == tau and summary["copy_onset"] == STEPS[35]
    assert summary["copy_lag"] == pytest.approx(STEPS[35] / tau)
    assert summary["best_swd"] == 1.0 and summary["best_swd_step"] == STEPS[20]
    within = (np.log10(STEPS) - np.log10(STEPS[20])) ** 2 <= 0.1  # within 10% of the best, 1.0
    assert summary["tau_gen"] == STEPS[np.flatnonzero(within)[0]] < STEPS[20]


def test_summary_keys_take_the_best_space_the_run_measured():
    log = {"mem_ratio_pixels": [0.0], "swd_pixels_test": [0.1]}
    assert metrics.summary_keys(log) == ("mem_ratio_pixels", "swd_pixels_test")
    log["swd_randconv_test"] = [0.2]
    assert metrics.summary_keys(log) == ("mem_ratio_pixels", "swd_randconv_test")
    log.update(mem_sscd=[0.0], swd_inception_test=[0.3])
    assert metrics.summary_keys(log) == ("mem_sscd", "swd_inception_test")
    assert metrics.summary_keys({}) == ("mem_ratio_pixels", "swd_pixels_test")  # no sample evaluation yet


def test_load_log_reads_nothing_from_a_run_without_evaluations(tmp_path):
    assert metrics.load_log(tmp_path) == {}
    np.savez(tmp_path / "log.npz")  # no keys
    assert metrics.load_log(tmp_path) == {}
    np.savez(tmp_path / "log.npz", step=np.array([5]), train_loss=np.array([0.3]))
    assert metrics.load_log(tmp_path)["step"].tolist() == [5]


def test_distance_share_counts_the_references_in_both_the_part_and_the_whole():
    """References 2 s, three evaluations' distances 1 s each, 15 s of run: 5 / 17."""
    log = {"distance_references_seconds": np.full(3, 2.0), "distance_seconds": np.ones(3),
           "elapsed_seconds": np.array([5.0, 10.0, 15.0])}
    assert metrics.distance_share(log) == pytest.approx(5 / 17)
    assert np.isnan(metrics.distance_share({"elapsed_seconds": np.array([1.0])}))  # a run that did not time them


def test_scaling_fit_on_exact_and_noisy_proportional_data():
    n = np.array([64, 128, 256, 512])
    fit = metrics.scaling_fit(n, 3.0 * n)
    assert fit["loglog_slope"] == pytest.approx(1.0) and fit["origin_slope"] == pytest.approx(3.0)
    assert fit["origin_r2"] == pytest.approx(1.0)
    quadratic = metrics.scaling_fit(n, 0.01 * n ** 2)
    assert quadratic["loglog_slope"] == pytest.approx(2.0) and quadratic["origin_r2"] < 0.95
    assert np.isnan(metrics.scaling_fit(n, [np.nan, np.nan, 5.0, np.nan])["loglog_slope"])
    # the centred R^2 by its definition, against a hand computation
    tau = np.array([200.0, 410.0, 790.0, 1650.0])
    slope = (n @ tau) / (n @ n)
    expected = 1 - np.sum((tau - slope * n) ** 2) / np.sum((tau - tau.mean()) ** 2)
    assert metrics.scaling_fit(n, tau)["origin_r2"] == pytest.approx(expected)


def test_fid_of_two_samples_of_one_gaussian_has_its_closed_form_count_bias():
    """FID between n and m draws of one distribution is not 0. In one dimension, with sample
    standard deviations s (ddof 1) of mean c(k) sigma, E[FID] = sigma^2 [1/n + 1/m + 2 - 2 c(n) c(m)]
    exactly, c(k) = sqrt(2 / (k - 1)) Gamma(k / 2) / Gamma((k - 1) / 2): fewer samples, larger FID."""
    from scipy.special import gammaln

    c = lambda k: np.sqrt(2 / (k - 1)) * np.exp(gammaln(k / 2) - gammaln((k - 1) / 2))
    rng = np.random.default_rng(0)
    sigma = 1.7
    for n, m in ((8, 32), (32, 32)):
        draws = [metrics.fid(rng.normal(3, sigma, (n, 1)), rng.normal(3, sigma, (m, 1))) for _ in range(6000)]
        expected = sigma ** 2 * (1 / n + 1 / m + 2 - 2 * c(n) * c(m))
        assert abs(np.mean(draws) - expected) < 4 * np.std(draws) / np.sqrt(len(draws)), (n, m)
    # in d dimensions the mean term alone is tr(S) (1/n + 1/m) in expectation: a floor
    d, n, m = 3, 16, 64
    draws = [metrics.fid(rng.normal(0, sigma, (n, d)), rng.normal(0, sigma, (m, d))) for _ in range(2000)]
    assert np.mean(draws) > d * sigma ** 2 * (1 / n + 1 / m)
