"""Exact rectified-flow velocity fields of two distributions made from the training set:
the yardsticks against which a network's memorization is read.

With flow.py's convention x_t = t x + (1 - t) e (t = 0 noise, t = 1 data), the velocity that
minimizes the loss for data distribution p is v*(x_t, t) = E[x - e | x_t] = (E[x | x_t] - x_t) / (1 - t).

The memorizer: p = the N training images, each with weight 1/N (class-conditional: the
images of the label). Then p(i | x_t) is a softmax over the images with logits
    -|x_t - t x_i|^2 / (2 (1 - t)^2)
and E[x | x_t] = sum_i p(i | x_t) x_i. It is the network that has memorized the training
set perfectly: its loss on the training set is the lowest any network can reach, its
samples are training images. Computed in JAX, one batched matmul per chunk of images with a
running log-sum-exp (online softmax), so N = 16,384 CIFAR images against a batch of 256
fits in memory, on any device.

The Gaussian: p = N(mu, S) with the training images' mean and covariance, S = U diag(lam) U^T
(one eigendecomposition per run). In U's basis every direction is a 1-D Gaussian problem:
    v*(x_t, t) = mu + U (c * U^T (x_t - t mu)),   c = (t lam - (1 - t)) / (t^2 lam + (1 - t)^2)
The best a network can do by generalizing to second moments; it never copies.

The patch memorizer (Kamb & Ganguli 2024; Niedoba et al. 2024, arXiv:2411.19339): the
memorizer made local and translation-equivariant, as a convolutional network is. Each pixel p
sees only the k x k window of x_t around it, and the prior on that window is the set of all
k x k patches of all training images (all (H-k+1)(W-k+1) positions, no padding; of the class
asked for, as above). So p(j | window) is the softmax over patches j with logits
    -|window - t x_j|^2 / (2 (1 - t)^2)
and E[x_p | x_t] = sum_j p(j | window) (x_j at p's place in the window). Why: the U-Net's
receptive field is finite and its weights are shared across positions, so early in training it
is closer to this than to the global memorizer; its samples are mosaics of training patches,
new images rather than copies. Borders: the window is clamped to lie inside the image (top-left
corner clip(p - k//2, 0, H - k)), so a border pixel is read off-centre in its window; then
only (H-k+1)(W-k+1) distinct windows exist per image, each pixel takes its value from one of
them, and k = H is the memorizer exactly. Cost: per image, (H-k+1)^2 queries against
N (H-k+1)^2 patches of dimension k^2 C, i.e. ~4 B N (H-k+1)^4 k^2 C FLOPs; memory is one
(B (H-k+1)^2, chunk) logit block. Both memorizers share one online-softmax leaf.

All three are flow.py velocity functions, velocity(params, x, t, y), with params made by
memorizer_params / gaussian_params / patch_memorizer_params, so flow.per_sample_loss and
flow.sample use them as they use the U-Net. Images in the model's range, (n, H, W, C).
relative_distance_by_bin reads a network's velocity against one of them, per bin of t.
"""
import jax
import jax.numpy as jnp
import numpy as np

MIN_ONE_MINUS_T = 1e-6  # 1 - t is clamped here: t = 1 exactly would divide by zero


def _bank(rows, labels, num_classes, chunk):
    """Rows (N, D) centred (their mean subtracted; the same is done to x_t's data part, which
    leaves the posterior unchanged and keeps float32 dot products small), in (n_chunks, chunk, D)
    blocks padded with invalid rows (label -1); numpy arrays."""
    rows = np.asarray(rows, np.float32)
    mean = rows.mean(axis=0)
    chunk = min(chunk, len(rows))
    n_chunks = -(-len(rows) // chunk)
    padded = np.zeros((n_chunks * chunk, rows.shape[1]), np.float32)
    padded[:len(rows)] = rows - mean
    padded_labels = np.full(n_chunks * chunk, -1, np.int32)
    padded_labels[:len(rows)] = labels
    has_class = np.bincount(labels, minlength=num_classes + 1)[:num_classes + 1] > 0  # (num_classes + 1,)
    has_class[num_classes] = False  # the null label restricts to no class: every row
    return {"rows": padded.reshape(n_chunks, chunk, -1),  # (n_chunks, chunk, D)
            "labels": padded_labels.reshape(n_chunks, chunk),
            "half_sq_norms": 0.5 * (padded ** 2).sum(axis=1).reshape(n_chunks, chunk),
            "mean": mean, "has_class": has_class}


def _posterior_mean(rows, labels, half_sq_norms, has_class, queries, t_col, one_minus_t, y):
    """sum_i p(i | q) x_i for each query q = t (x - mean) + (1 - t) e over a _bank's centred rows
    x_i (of q's class y, unless y is the null label or a class with no row), with logits
    -|q - t x_i|^2 / (2 (1 - t)^2): one matmul per chunk and a running log-sum-exp (online
    softmax). rows: (n_chunks, c, D), queries: (Q, D), t_col, one_minus_t: (Q, 1), y: (Q,).
    Returns (Q, D), centred."""
    by_class = has_class[jnp.clip(y, 0, has_class.shape[0] - 1)]  # (Q,): restrict to the class?

    def add_chunk(carry, chunk):
        running_max, total, weighted = carry  # (Q,), (Q,), (Q, D)
        rows, labels, half_sq_norms = chunk  # (c, D), (c,), (c,)
        # -|q - t x_i|^2 / (2 (1 - t)^2), without |q|^2 (the same for every i)
        logits = (t_col * (queries @ rows.T) - t_col ** 2 * half_sq_norms) / one_minus_t ** 2  # (Q, c)
        allowed = (labels >= 0) & ((labels == y[:, None]) | ~by_class[:, None])
        logits = jnp.where(allowed, logits, -jnp.inf)
        new_max = jnp.maximum(running_max, logits.max(axis=1))
        shift = jnp.where(jnp.isfinite(new_max), new_max, 0.0)  # no row allowed yet: nothing to scale
        rescale = jnp.exp(running_max - shift)  # (Q,)
        weights = jnp.exp(logits - shift[:, None])  # (Q, c)
        return (new_max, total * rescale + weights.sum(axis=1), weighted * rescale[:, None] + weights @ rows), None

    start = (jnp.full(queries.shape[0], -jnp.inf), jnp.zeros(queries.shape[0]), jnp.zeros_like(queries))
    (_, total, weighted), _ = jax.lax.scan(add_chunk, start, (rows, labels, half_sq_norms))
    return weighted / total[:, None]


def memorizer_params(images, labels, num_classes, chunk=1024):
    """The training set arranged for memorizer_velocity: a _bank of the flattened images."""
    bank = _bank(np.asarray(images, np.float32).reshape(len(images), -1), labels, num_classes, chunk)
    return {"images": jnp.asarray(bank["rows"]),  # (n_chunks, chunk, D)
            **{key: jnp.asarray(bank[key]) for key in ("labels", "half_sq_norms", "mean", "has_class")}}


def memorizer_velocity(params, x, t, y):
    """v*(x_t, t) of the empirical distribution; y selects the class (the null label, or a
    class with no training image, selects all images). x: (B, H, W, C), t: (B,), y: (B,)."""
    b = x.shape[0]
    t_col = t[:, None]  # (B, 1)
    one_minus_t = jnp.maximum(1.0 - t_col, MIN_ONE_MINUS_T)
    x_t = x.reshape(b, -1)  # (B, D)
    centred = x_t - t_col * params["mean"]  # = t (x - mean) + (1 - t) e
    posterior_mean = _posterior_mean(params["images"], params["labels"], params["half_sq_norms"],
                                     params["has_class"], centred, t_col, one_minus_t, y) + params["mean"]
    return ((posterior_mean - x_t) / one_minus_t).reshape(x.shape)  # E[x | x_t] -> v


def patch_memorizer_params(images, labels, num_classes, patch_size, chunk=1024):
    """The training set's k x k patches (k = patch_size) at every position of every image, for
    patch_memorizer_velocity: a _bank of them, each with its image's label; patches and mean
    kept (k, k, C)-shaped, so that k is static under jit."""
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    k = patch_size
    windows = np.lib.stride_tricks.sliding_window_view(images, (k, k), axis=(1, 2))  # (N, h-k+1, w-k+1, C, k, k)
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k * k * c)  # (N (h-k+1)(w-k+1), k k C)
    bank = _bank(patches, np.repeat(labels, (h - k + 1) * (w - k + 1)), num_classes, chunk)
    return {"patches": jnp.asarray(bank["rows"].reshape(*bank["rows"].shape[:2], k, k, c)),  # (n_chunks, chunk, k, k, C)
            "mean": jnp.asarray(bank["mean"].reshape(k, k, c)),
            **{key: jnp.asarray(bank[key]) for key in ("labels", "half_sq_norms", "has_class")}}


def patch_memorizer_velocity(params, x, t, y):
    """v*(x_t, t) of the local patch memorizer: each pixel's E[x_p | its clamped k x k window]
    under the training patches of class y (null label: all). x: (B, H, W, C), t: (B,), y: (B,)."""
    b, h, w, c = x.shape
    k = params["patches"].shape[2]
    rows_h, rows_w = h - k + 1, w - k + 1  # distinct window positions
    windows = jnp.stack([jnp.stack([x[:, i:i + rows_h, j:j + rows_w] for j in range(k)], axis=3)
                         for i in range(k)], axis=3)  # (B, rows_h, rows_w, k, k, C), top-left corner first
    per_window = rows_h * rows_w
    t_col = jnp.repeat(t, per_window)[:, None]  # (B rows_h rows_w, 1)
    one_minus_t = jnp.maximum(1.0 - t_col, MIN_ONE_MINUS_T)
    centred = windows.reshape(b * per_window, -1) - t_col * params["mean"].reshape(-1)  # (Q, k k C)
    patches = params["patches"].reshape(*params["patches"].shape[:2], -1)  # (n_chunks, chunk, k k C)
    mean_patches = _posterior_mean(patches, params["labels"], params["half_sq_norms"], params["has_class"],
                                   centred, t_col, one_minus_t, jnp.repeat(y, per_window))
    mean_patches = mean_patches.reshape(b, rows_h, rows_w, k, k, c) + params["mean"]  # E[window | window]
    top_h, top_w = np.clip(np.arange(h) - k // 2, 0, h - k), np.clip(np.arange(w) - k // 2, 0, w - k)
    posterior_mean = mean_patches[:, top_h[:, None], top_w[None, :],  # each pixel from its window: (B, H, W, C)
                                  (np.arange(h) - top_h)[:, None], (np.arange(w) - top_w)[None, :]]
    return (posterior_mean - x) / one_minus_t.reshape(b, per_window)[:, :1, None, None]


def gaussian_params(images):
    """Mean, and eigenvalues and eigenvectors of the covariance (divided by N), of the training
    images, in float64 then float32. Round-off eigenvalues below 0 are set to 0."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    mean = flat.mean(axis=0)
    centred = flat - mean
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(flat))
    return {"mean": jnp.asarray(mean, jnp.float32),  # (D,)
            "eigenvalues": jnp.asarray(np.maximum(eigenvalues, 0.0), jnp.float32),  # (D,)
            "eigenvectors": jnp.asarray(eigenvectors, jnp.float32)}  # (D, D), columns


def gaussian_velocity(params, x, t, y=None):
    """v*(x_t, t) of N(mean, covariance); labels are ignored. x: (B, H, W, C), t: (B,)."""
    b = x.shape[0]
    t_col = t[:, None]
    one_minus_t = jnp.maximum(1.0 - t_col, MIN_ONE_MINUS_T)
    lam = params["eigenvalues"][None, :]  # (1, D)
    coefficient = (t_col * lam - one_minus_t) / (t_col ** 2 * lam + one_minus_t ** 2)  # (B, D)
    z = (x.reshape(b, -1) - t_col * params["mean"]) @ params["eigenvectors"]  # (B, D), U^T (x_t - t mu)
    return (params["mean"] + (coefficient * z) @ params["eigenvectors"].T).reshape(x.shape)


def relative_distance_by_bin(v_model, v_ref, t, num_bins=10):
    """sum |v_model - v_ref|^2 / sum |v_ref|^2 over the samples whose t falls in each of num_bins
    equal bins of [0, 1] (t = 1 in the last), NaN for an empty bin. v_*: (n, ...), t: (n,).
    Returns (num_bins,) numpy, float64."""
    t = np.asarray(t, np.float64)
    v_model = np.asarray(v_model, np.float64).reshape(len(t), -1)
    v_ref = np.asarray(v_ref, np.float64).reshape(len(t), -1)
    bins = np.clip(np.floor(t * num_bins).astype(int), 0, num_bins - 1)  # (n,)
    error = np.bincount(bins, ((v_model - v_ref) ** 2).sum(axis=1), minlength=num_bins)
    scale = np.bincount(bins, (v_ref ** 2).sum(axis=1), minlength=num_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.bincount(bins, minlength=num_bins) > 0, error / scale, np.nan)
