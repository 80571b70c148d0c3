"""Metrics of the memorization study, in numpy and scipy only (float64 throughout).

Feature sets are arrays of shape (n_samples, ...) (e.g. features.py's (N, D) float32), flattened
to (n_samples, dim) float64 before any arithmetic.

FID (Heusel et al. 2017, conventions of pytorch-fid)
    FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrtm(S1 S2), with the means mu and the
    covariances S (divided by N - 1) of the two feature sets. The trace term never calls
    scipy.linalg.sqrtm (complex results, the scipy 1.11.2-1.11.3 regression, `disp` removed
    in 1.18): S1 S2 is similar to the symmetric PSD matrix M = S1^1/2 S2 S1^1/2, so
    tr sqrtm(S1 S2) = sum_i sqrt(lambda_i(M)), with S1^1/2 from eigh. Eigenvalues of S1 and of
    M below dim * eps * (largest eigenvalue) are round-off, negative or not, and are set to 0:
    rank-deficient covariances (500 samples of 2048-d features have rank 499) are the usual
    case here, and without that cut each of their ~1500 null directions adds sqrt(eps)-sized
    noise after the square root (an error of 3e-7 on a trace of 7 in a 2048-d, 500-sample
    trial; 1e-15 with the cut).
    FID is biased upwards at small sample counts: compare values computed with equal counts.
    Reference statistics can be accumulated over batches (accumulate_moments) and cached.

Sliced Wasserstein distance: SW2, 1024 directions, seed 0
    SW2(X, Y) = sqrt(mean_k W2^2(<theta_k, X>, <theta_k, Y>)), the convention of POT's
    ot.sliced_wasserstein_distance(p=2). The K = 1024 directions theta_k are Gaussian vectors
    normalized to unit length (uniform on the sphere) drawn from seed 0, so every evaluation of
    every run is measured along the same slices: SW is then a fixed distance between the two
    sets, and curves carry no jitter from redrawing directions. W2 on each line is exact, also
    for unequal sample counts n != m: the integral over q in (0, 1) of |F^-1(q) - G^-1(q)|^2,
    both quantile functions being constant between the merged breakpoints {i/n} and {j/m}.
    SW2 rather than SW1: it slices the same W2 geometry that FID measures between Gaussians,
    and it is in feature units (SW2(aX, aY) = |a| SW2(X, Y)).

Copy detection
    Memorization score: the fraction of generated samples whose maximum cosine similarity to
    the training set (SSCD features) is strictly greater than 0.6 (the paper).
    Pixel ratio (Yoon et al. 2023, Gu et al. 2025): a sample is a copy when
    ||x - NN1|| / ||x - NN2|| < 1/3, NN1 and NN2 its two nearest distinct training images in
    L2 pixel distance. Both scan the generated samples in chunks: a (chunk_size, n_train)
    block at a time, never the full (n_generated, n_train) matrix.

Quantities read off a run's log (evaluate.py writes it): a dict (or .npz) of arrays, one
entry per evaluation in step order. Losses and their references are indexed by 'step';
metrics measured on samples (keys beginning mem_, swd_, fid_) by 'sample_step', which may be a
sparser grid (steps_of tells which array indexes a key).
    tau_mem, the memorization time: the step at which the test loss leaves the train loss for
        good, i.e. stops falling with it and turns up. It is the minimum of the test loss,
        smoothed over 3 neighbouring evaluations (log-spaced: a smoothing in log(step)) and
        located between evaluations by a parabola through the lowest point and its neighbours
        in log(step); NaN unless the test loss has turned up for good, with at least
        min_evals = 2 evaluations after the minimum and the last 0.5% above it (evaluations
        share their images and noise, so a rise that small is the network's, not noise; the
        standard error over images is about the level, not about changes between
        evaluations). The location does not depend on how many images the evaluation uses,
        only on the curve they estimate (docs/METHODS.md, "tau_mem", compares it with other
        rules).
    copy onset: the first sample evaluation whose memorization score reaches COPY_ONSET (5% of
        the samples are copies); its ratio to tau_mem is the lag between the two.
    memorization rate: least-squares slope of the memorization score against log10(step) over
        the evaluations with step >= tau_mem, in fraction per decade of steps: unchanged when
        the step axis is rescaled (normalized steps, other batch sizes); NaN with < 2 steps.
    best fidelity: the minimum SW over the evaluations with step <= tau_mem (all of them when
        tau_mem is NaN), and the step where it is reached.

Use
    mean, cov = feature_statistics(test_features)      # or accumulate_moments over batches
    score = fid(generated_features, test_features)     # or frechet_distance(m1, c1, m2, c2)
    swd = sliced_wasserstein(generated_features, test_features)
    cosine, index = nearest_by_cosine(generated_sscd, train_sscd)
    mem = memorization_score(cosine[:, 0])
    ratio, index = nearest_neighbour_ratio(generated_pixels, train_pixels)
    copies = copy_fraction(ratio)
    summary = summarize_run(load_log("runs/demo"))      # tau_mem, copy onset, rate, best SW
"""
import zipfile
from pathlib import Path

import numpy as np

MEMORIZATION_THRESHOLD = 0.6  # SSCD cosine, the paper
COPY_RATIO_THRESHOLD = 1 / 3  # pixel-space ||x - NN1|| / ||x - NN2||, Yoon et al. 2023
N_DIRECTIONS = 1024
DIRECTIONS_SEED = 0
COPY_ONSET = 0.05  # the copy onset: 5% of the samples are copies
GENERATION_TOLERANCE = 0.1  # tau_gen: the first sample step within 10% of the best fidelity before tau_mem
SAMPLE_PREFIXES = ("mem_", "swd_", "fid_")  # log keys measured on samples, indexed by 'sample_step'


def as_rows(features):
    """(n, ...) array -> (n, dim) float64."""
    features = np.asarray(features, dtype=np.float64)
    return features.reshape(len(features), -1)


def squared_norms(rows):
    """|row|^2 of each row of (n, dim), without an (n, dim) temporary."""
    return np.einsum("ij,ij->i", rows, rows)


# ---------------------------------------------------------------------------------------
# FID

def accumulate_moments(features, moments=None):
    """Add a batch of features to (count, sum, sum of outer products); start from None.

    Those three arrays, shapes (), (dim,), (dim, dim), are all the statistics need: cache them,
    or turn them into (mean, covariance) with moments_to_statistics.
    """
    features = as_rows(features)
    count, total, outer = moments if moments is not None else (0, 0.0, 0.0)
    return count + len(features), total + features.sum(axis=0), outer + features.T @ features


def moments_to_statistics(moments):
    """(count, sum, sum of outer products) -> (mean (dim,), covariance (dim, dim) with N - 1)."""
    count, total, outer = moments
    if count < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {count}")
    mean = total / count
    # sum (x - mean)(x - mean)^T = sum x x^T - N mean mean^T. In float64 the cancellation costs
    # ~eps * mean^2 / variance in relative terms: harmless for pixel or network features.
    covariance = (outer - count * np.outer(mean, mean)) / (count - 1)
    return mean, covariance


def feature_statistics(features):
    """(mean, covariance with N - 1) of a feature set (n, ...)."""
    return moments_to_statistics(accumulate_moments(features))


def zero_round_off(eigenvalues):
    """Eigenvalues of a symmetric PSD matrix with those below dim * eps * largest set to 0."""
    cut = len(eigenvalues) * np.finfo(np.float64).eps * max(eigenvalues.max(), 0.0)
    return np.where(eigenvalues > cut, eigenvalues, 0.0)


def psd_sqrt(matrix):
    """Symmetric square root of a symmetric PSD matrix, from eigh (round-off eigenvalues -> 0)."""
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(zero_round_off(eigenvalues))) @ eigenvectors.T


def trace_sqrt_product(cov1, cov2):
    """tr sqrtm(cov1 @ cov2) = sum of sqrt eigenvalues of cov1^1/2 cov2 cov1^1/2 (PSD, real)."""
    sqrt_cov1 = psd_sqrt(np.asarray(cov1, dtype=np.float64))
    middle = sqrt_cov1 @ np.asarray(cov2, dtype=np.float64) @ sqrt_cov1
    return float(np.sqrt(zero_round_off(np.linalg.eigvalsh((middle + middle.T) / 2))).sum())


def frechet_distance(mean1, cov1, mean2, cov2):
    """FID between Gaussians (mean1, cov1) and (mean2, cov2); equal ones may give -round-off."""
    mean_difference = np.asarray(mean1, dtype=np.float64) - np.asarray(mean2, dtype=np.float64)
    return float(mean_difference @ mean_difference + np.trace(cov1) + np.trace(cov2)
                 - 2 * trace_sqrt_product(cov1, cov2))


def fid(features1, features2):
    """FID between two feature sets (n1, ...) and (n2, ...)."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


# ---------------------------------------------------------------------------------------
# Sliced Wasserstein

def random_directions(dim, n_directions=N_DIRECTIONS, seed=DIRECTIONS_SEED):
    """(dim, n_directions) unit columns, uniform on the sphere: normalized Gaussian vectors.

    Columns, as the `projections` argument of POT's ot.sliced_wasserstein_distance.
    """
    gaussian = np.random.default_rng(seed).standard_normal((dim, n_directions))
    return gaussian / np.linalg.norm(gaussian, axis=0)


def wasserstein_1d(u, v, p=2):
    """Exact W_p^p (the p-th power) between the empirical distributions of u and v.

    u: (n,) or (n, k), v: (m,) or (m, k), n != m allowed; with columns, k problems at once,
    returning (k,). W_p^p = integral over q in (0, 1) of |F^-1(q) - G^-1(q)|^p.
    """
    u, v = np.sort(u, axis=0), np.sort(v, axis=0)
    n, m = len(u), len(v)
    # The quantile functions jump at q = i/n and q = j/m: in integer units of 1/(n m) these are
    # i*m and j*n, merged exactly. Between consecutive breakpoints both are constant.
    breakpoints = np.union1d(np.arange(1, n + 1) * m, np.arange(1, m + 1) * n)  # ends at n m
    widths = np.diff(breakpoints, prepend=0) / (n * m)
    # On the piece ending at q = b / (n m): F^-1(q) = u[ceil(q n) - 1] = u[ceil(b / m) - 1].
    u_on_pieces = u[-(-breakpoints // m) - 1]  # (n_pieces,) or (n_pieces, k)
    v_on_pieces = v[-(-breakpoints // n) - 1]
    return widths @ np.abs(u_on_pieces - v_on_pieces) ** p


def sliced_wasserstein(x, y, n_directions=N_DIRECTIONS, seed=DIRECTIONS_SEED, directions=None,
                       p=2, directions_per_chunk=128):
    """SW_p(x, y) = (mean over directions of W_p^p)^(1/p) between feature sets x and y.

    x: (n, ...), y: (m, ...). directions: (dim, K) unit columns, by default
    random_directions(dim, n_directions, seed). Projects directions_per_chunk directions at a
    time, so memory beyond the inputs is ~(n + m) * directions_per_chunk floats.
    """
    x, y = as_rows(x), as_rows(y)
    if directions is None:
        directions = random_directions(x.shape[1], n_directions, seed)
    powers = [wasserstein_1d(x @ directions[:, start:start + directions_per_chunk],
                             y @ directions[:, start:start + directions_per_chunk], p)
              for start in range(0, directions.shape[1], directions_per_chunk)]
    return float(np.mean(np.concatenate(powers)) ** (1 / p))


# ---------------------------------------------------------------------------------------
# Copy detection

def top_k_scores(queries, keys, key_offsets, k, chunk_size):
    """The k largest queries @ keys.T + key_offsets of each query row, best first.

    queries: (n, dim), keys: (n_keys, dim), key_offsets: (n_keys,) or a scalar. Returns
    (scores (n, k), key indices (n, k)). Works on (chunk_size, n_keys) blocks of queries.
    """
    if not 1 <= k <= len(keys):
        raise ValueError(f"asked for the {k} nearest of {len(keys)} training samples")
    best_scores = np.empty((len(queries), k))
    best_indices = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk_size):
        rows = slice(start, start + chunk_size)
        scores = queries[rows] @ keys.T + key_offsets  # (chunk, n_keys)
        top = np.argpartition(scores, -k, axis=1)[:, -k:]  # the k best, unordered
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1)
        best_scores[rows] = np.take_along_axis(top_scores, order, axis=1)
        best_indices[rows] = np.take_along_axis(top, order, axis=1)
    return best_scores, best_indices


def nearest_by_cosine(generated, training, k=1, chunk_size=256):
    """Cosine similarity to the k most similar training samples, most similar first.

    generated: (n, ...), training: (n_train, ...). Returns (cosines (n, k), indices (n, k)).
    """
    generated, training = as_rows(generated), as_rows(training)
    generated = generated / np.sqrt(squared_norms(generated))[:, None]
    training = training / np.sqrt(squared_norms(training))[:, None]
    return top_k_scores(generated, training, 0.0, k, chunk_size)


def memorization_score(max_cosine, threshold=MEMORIZATION_THRESHOLD):
    """Fraction of generated samples whose maximum cosine is strictly above threshold."""
    return float(np.mean(np.asarray(max_cosine) > threshold))


def nearest_by_distance(generated, training, k=2, chunk_size=256):
    """L2 distance to the k nearest training samples, nearest first.

    generated: (n, ...), training: (n_train, ...). Returns (distances (n, k), indices (n, k)).
    """
    generated, training = as_rows(generated), as_rows(training)
    # |g - t|^2 = |g|^2 - 2 (g.t - |t|^2 / 2), and |g|^2 is the same for every t: the nearest
    # t maximize g.t - |t|^2 / 2. The squared distances keep an absolute error ~eps * |g|^2,
    # far below anything the 1/3 ratio threshold can see.
    scores, indices = top_k_scores(generated, training, -0.5 * squared_norms(training), k, chunk_size)
    squared = squared_norms(generated)[:, None] - 2 * scores
    return np.sqrt(np.maximum(squared, 0.0)), indices


def nearest_neighbour_ratio(generated, training, chunk_size=256):
    """||x - NN1|| / ||x - NN2|| for each generated x, NN1 and NN2 distinct training samples.

    Returns (ratio (n,), indices (n, 2) of NN1 and NN2). The ratio is 0 where both distances
    are 0: x is an exact copy of an image that the training set holds twice.
    """
    if len(training) < 2:
        raise ValueError("the nearest-neighbour ratio needs at least 2 training samples, "
                         f"got {len(training)}")
    distances, indices = nearest_by_distance(generated, training, 2, chunk_size)
    ratio = np.divide(distances[:, 0], distances[:, 1], out=np.zeros(len(distances)),
                      where=distances[:, 1] > 0)
    return ratio, indices


def copy_fraction(ratio, threshold=COPY_RATIO_THRESHOLD):
    """Fraction of generated samples whose nearest-neighbour ratio is strictly below threshold."""
    return float(np.mean(np.asarray(ratio) < threshold))


# ---------------------------------------------------------------------------------------
# Quantities read off a run's log

class LogError(ValueError):
    """A log.npz that cannot be read; the message names the file and the fix."""


def load_log(run_dir):
    """A run's log.npz as {key: array}; {} while the run has no evaluation yet (no file, or
    a file without steps), so that every reader can skip such a run. A damaged file is a
    LogError: the run's checkpoint holds the log, and starting the run again rewrites it."""
    path = Path(run_dir) / "log.npz"
    if not path.exists():
        return {}
    try:
        with np.load(path) as f:
            log = dict(f)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise LogError(f"{path} is damaged ({type(err).__name__}); `python train.py --run_dir {run_dir}` rewrites "
                       f"it from the run's checkpoint (a complete run only does that)") from None
    return log if len(log.get("step", ())) else {}


def steps_of(log, key):
    """The steps that index log[key]: 'sample_step' for metrics measured on samples, else 'step'."""
    return np.asarray(log["sample_step" if key.startswith(SAMPLE_PREFIXES) and "sample_step" in log else "step"], float)


def smooth(values):
    """Each value averaged with its neighbours (two at the ends): a 3-point running mean over the
    evaluation grid, which is log-spaced, so a smoothing in log(step)."""
    padded = np.concatenate([values[:1], values, values[-1:]])
    weights = np.concatenate([[0.0], np.ones(len(values)), [0.0]])
    sums = np.convolve(padded * weights, np.ones(3), "valid")
    return sums / np.convolve(weights, np.ones(3), "valid")


def parabola_vertex(x, y):
    """The x of the extremum of the parabola through three points (x, y), within [x0, x2]."""
    (x0, x1, x2), (y0, y1, y2) = x, y
    numerator = (x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)
    denominator = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    if denominator == 0:
        return x1
    return float(np.clip(x1 - 0.5 * numerator / denominator, x0, x2))


def memorization_time(log, rise=0.005, min_evals=2):
    """tau_mem: the step where the smoothed test loss is lowest, between evaluations by a
    parabola in log(step); NaN unless the test loss has turned up for good: at least min_evals
    evaluations after it, the last (smoothed) more than a fraction `rise` above the minimum."""
    steps, test = np.asarray(log["step"], float), np.asarray(log["test_loss"], float)
    steps, test = steps[np.isfinite(test)], test[np.isfinite(test)]
    if len(test) < 3:
        return float("nan")
    smoothed = smooth(test)
    k = int(np.argmin(smoothed))
    if len(test) - 1 - k < min_evals or smoothed[-1] <= (1 + rise) * smoothed[k]:
        return float("nan")
    if k == 0:  # lowest at the first evaluation: tau_mem is at or before it
        return float(steps[0])
    x = np.log(steps[k - 1:k + 2])
    return float(np.exp(parabola_vertex(x, smoothed[k - 1:k + 2])))


def copy_onset(log, mem_key, fraction=COPY_ONSET):
    """The first step at which the memorization score log[mem_key] reaches fraction; NaN if never."""
    steps, score = steps_of(log, mem_key), np.asarray(log[mem_key], float)
    reached = np.flatnonzero(score >= fraction)
    return float(steps[reached[0]]) if len(reached) else float("nan")


def memorization_rate(log, tau_mem, mem_key="mem_sscd"):
    """Least-squares slope of log[mem_key] against log10(step) at steps >= tau_mem (per decade)."""
    steps, score = steps_of(log, mem_key), np.asarray(log[mem_key], float)
    after = (steps >= tau_mem) & (steps > 0) & np.isfinite(score)  # nothing when tau_mem is NaN
    if len(np.unique(steps[after])) < 2:
        return float("nan")
    log_steps = np.log10(steps[after])
    centred = log_steps - log_steps.mean()
    return float(centred @ (score[after] - score[after].mean()) / (centred @ centred))


def best_fidelity(log, tau_mem, swd_key="swd_inception_test"):
    """(minimum of log[swd_key] at steps <= tau_mem, or over all steps if tau_mem is NaN, its step)."""
    steps, swd = steps_of(log, swd_key), np.asarray(log[swd_key], float)
    before = np.isfinite(swd) & ((steps <= tau_mem) | np.isnan(tau_mem))
    if not before.any():
        return float("nan"), float("nan")
    best = np.flatnonzero(before)[np.argmin(swd[before])]
    return float(swd[best]), float(steps[best])


def generalization_time(log, tau_mem, swd_key="swd_inception_test", within=GENERATION_TOLERANCE):
    """tau_gen (Bonnaire et al. 2025, arXiv:2505.17638): the first sample step at which the
    fidelity log[swd_key] comes within `within` (10%) of the run's best fidelity at or before
    tau_mem, the one the paper measures; so tau_gen <= that best's step. NaN without samples."""
    best, _ = best_fidelity(log, tau_mem, swd_key)
    steps, swd = steps_of(log, swd_key), np.asarray(log[swd_key], float)
    reached = np.flatnonzero(np.isfinite(swd) & (swd <= best * (1 + within)))
    return float(steps[reached[0]]) if np.isfinite(best) and len(reached) else float("nan")


def summary_keys(log):
    """(memorization score key, SW key) of a log: SSCD and Inception where the run had their
    weights, else the pixel-space copy fraction and SW in the random ConvNet's space (randconv)
    if the run measured it, else pixel SW."""
    mem = "mem_sscd" if "mem_sscd" in log else "mem_ratio_pixels"
    swd = next((f"swd_{space}_test" for space in ("inception", "randconv") if f"swd_{space}_test" in log),
               "swd_pixels_test")
    return mem, swd


def summarize_run(log, swd_key="swd_inception_test", mem_key="mem_sscd"):
    """{'tau_mem', 'tau_gen', 'copy_onset', 'copy_lag' (copy onset / tau_mem), 'memorization_rate',
    'best_swd', 'best_swd_step', 'mem_at_best_swd' (the memorization score there), and the
    yardsticks 'memorizer_swd' and 'gaussian_swd' (the SW of the exact references' samples,
    evaluate.py)}, floats (NaN if undefined or not logged)."""
    tau_mem = memorization_time(log)
    onset = copy_onset(log, mem_key)
    best_swd, best_swd_step = best_fidelity(log, tau_mem, swd_key)
    at_best = np.flatnonzero(steps_of(log, mem_key) == best_swd_step)  # SW and copies share sample steps
    yardstick = {f"{name}_swd": float(log[f"{name}_{swd_key}"][0]) if f"{name}_{swd_key}" in log else float("nan")
                 for name in ("memorizer", "gaussian")}
    return {"tau_mem": tau_mem, "tau_gen": generalization_time(log, tau_mem, swd_key),
            "copy_onset": onset, "copy_lag": onset / tau_mem,
            "memorization_rate": memorization_rate(log, tau_mem, mem_key),
            "best_swd": best_swd, "best_swd_step": best_swd_step,
            "mem_at_best_swd": float(log[mem_key][at_best[0]]) if len(at_best) else float("nan"), **yardstick}


# The exact references the network's velocity is compared with (evaluate.make_distances), by
# their key in the log (distance_<key>_bins) and their name in figures and tables.
REFERENCES = {"memorizer": "memorizer", "gaussian": "Gaussian fit", "patch": "patch memorizer"}

# Bands of the 10 noise-level bins of t (0: pure noise, 1: data) in which the distances to the
# exact references are read: near noise every denoiser predicts the mean and the references
# agree; near the data the memorizer snaps to a training image while the others keep the input.
NOISE_BANDS = {"noisy": slice(0, 3), "middle": slice(3, 7), "clean": slice(7, 10)}


def distances_in_band(log, band):
    """{reference: (E,) mean relative distance of the network to it over the band's bins (those
    with inputs)}; log: a run's log, or its curves in a record (nested lists)."""
    return {key[len("distance_"):-len("_bins")]: np.nanmean(np.asarray(log[key], float)[:, NOISE_BANDS[band]], axis=1)
            for key in log if key.startswith("distance_") and key.endswith("_bins")}


def distance_share(log):
    """The share of a run's wall time spent on the distances to the exact references
    (evaluate.make_distances): their one-off references and every evaluation's part, over the
    run's training and evaluation time plus those references; NaN if the run did not time them."""
    if "distance_seconds" not in log or "elapsed_seconds" not in log:
        return float("nan")
    references = float(log["distance_references_seconds"][0])
    return (references + float(np.sum(log["distance_seconds"]))) / (float(log["elapsed_seconds"][-1]) + references)


def normalized_step(steps, cfg, mins):
    """The paper's normalized step T = step * (N_min/N) * (B/B_min) * (lr/lr_min). cfg: a run's
    config as a dict; mins: the smallest value of each axis of the sweep."""
    return (np.asarray(steps, float) * (mins["num_train"] / cfg["num_train"])
            * (cfg["batch_size"] / mins["batch_size"]) * (cfg["lr"] / mins["lr"]))


def scaling_fit(n, tau):
    """How tau_mem grows with N: {'loglog_slope' and 'loglog_prefactor' (the power law
    tau = prefactor N^slope fitted in log-log; slope 1 for proportional), 'origin_slope' (tau = a N,
    least squares), 'origin_r2' (1 - residual / total sum of squares about the mean)}; NaN
    with fewer than 2 finite taus."""
    n, tau = np.asarray(n, float), np.asarray(tau, float)
    ok = np.isfinite(tau) & (tau > 0) & (n > 0)
    if ok.sum() < 2:
        return dict.fromkeys(["loglog_slope", "loglog_prefactor", "origin_slope", "origin_r2"], float("nan"))
    n, tau = n[ok], tau[ok]
    slope = float(n @ tau / (n @ n))
    residual, total = np.sum((tau - slope * n) ** 2), np.sum((tau - tau.mean()) ** 2)
    power, log_prefactor = np.polyfit(np.log(n), np.log(tau), 1)
    return {"loglog_slope": float(power), "loglog_prefactor": float(np.exp(log_prefactor)), "origin_slope": slope,
            "origin_r2": float(1 - residual / total) if total > 0 else float("nan")}
