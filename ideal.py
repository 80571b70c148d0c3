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

Both are flow.py velocity functions, velocity(params, x, t, y), with params made by
memorizer_params / gaussian_params, so flow.per_sample_loss and flow.sample use them as they
use the U-Net. Images in the model's range, (n, H, W, C).
"""
import jax
import jax.numpy as jnp
import numpy as np

MIN_ONE_MINUS_T = 1e-6  # 1 - t is clamped here: t = 1 exactly would divide by zero


def memorizer_params(images, labels, num_classes, chunk=1024):
    """The training set arranged for memorizer_velocity: centred images (the mean is subtracted
    from x_t's data part too, which leaves the posterior unchanged and keeps float32 dot
    products small), in (n_chunks, chunk, D) blocks padded with invalid rows (label -1)."""
    images = np.asarray(images, np.float32).reshape(len(images), -1)  # (N, D)
    mean = images.mean(axis=0)
    chunk = min(chunk, len(images))
    n_chunks = -(-len(images) // chunk)
    padded = np.zeros((n_chunks * chunk, images.shape[1]), np.float32)
    padded[:len(images)] = images - mean
    padded_labels = np.full(n_chunks * chunk, -1, np.int32)
    padded_labels[:len(images)] = labels
    has_class = np.bincount(labels, minlength=num_classes + 1)[:num_classes + 1] > 0  # (num_classes + 1,)
    has_class[num_classes] = False  # the null label restricts to no class: every image
    return {"images": jnp.asarray(padded.reshape(n_chunks, chunk, -1)),  # (n_chunks, chunk, D)
            "labels": jnp.asarray(padded_labels.reshape(n_chunks, chunk)),
            "half_sq_norms": jnp.asarray(0.5 * (padded ** 2).sum(axis=1).reshape(n_chunks, chunk)),
            "mean": jnp.asarray(mean),
            "has_class": jnp.asarray(has_class)}


def memorizer_velocity(params, x, t, y):
    """v*(x_t, t) of the empirical distribution; y selects the class (the null label, or a
    class with no training image, selects all images). x: (B, H, W, C), t: (B,), y: (B,)."""
    b = x.shape[0]
    t_col = t[:, None]  # (B, 1)
    one_minus_t = jnp.maximum(1.0 - t_col, MIN_ONE_MINUS_T)
    x_t = x.reshape(b, -1)  # (B, D)
    centred = x_t - t_col * params["mean"]  # = t (x - mean) + (1 - t) e
    # (B,): restrict to the class? has_class has num_classes + 1 entries, the null label's False
    by_class = params["has_class"][jnp.clip(y, 0, params["has_class"].shape[0] - 1)]

    def add_chunk(carry, chunk):
        running_max, total, weighted = carry  # (B,), (B,), (B, D)
        images, labels, half_sq_norms = chunk  # (c, D), (c,), (c,)
        # -|centred - t x_i|^2 / (2 (1 - t)^2), without |centred|^2 (the same for every i)
        logits = (t_col * (centred @ images.T) - t_col ** 2 * half_sq_norms) / one_minus_t ** 2  # (B, c)
        allowed = (labels >= 0) & ((labels == y[:, None]) | ~by_class[:, None])
        logits = jnp.where(allowed, logits, -jnp.inf)
        new_max = jnp.maximum(running_max, logits.max(axis=1))
        shift = jnp.where(jnp.isfinite(new_max), new_max, 0.0)  # no image allowed yet: nothing to scale
        rescale = jnp.exp(running_max - shift)  # (B,)
        weights = jnp.exp(logits - shift[:, None])  # (B, c)
        return (new_max, total * rescale + weights.sum(axis=1), weighted * rescale[:, None] + weights @ images), None

    start = (jnp.full(b, -jnp.inf), jnp.zeros(b), jnp.zeros_like(x_t))
    (_, total, weighted), _ = jax.lax.scan(add_chunk, start, (params["images"], params["labels"],
                                                              params["half_sq_norms"]))
    posterior_mean = weighted / total[:, None] + params["mean"]  # E[x | x_t], (B, D)
    return ((posterior_mean - x_t) / one_minus_t).reshape(x.shape)


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
