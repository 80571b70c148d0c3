"""Rectified flow (Liu, Gong & Liu 2023): the training loss and the Euler sampler.

Time convention (Liu et al.'s): t = 0 is pure noise, t = 1 is data.
    x_t = t * x_data + (1 - t) * noise,      noise ~ N(0, I)
    velocity target  v = dx_t/dt = x_data - noise
The network v(x_t, t, y) regresses v; the loss is the squared error averaged over pixels,
with t ~ U[0, 1]. Sampling integrates dx/dt = v from t = 0 (pure noise) to t = 1 (data).
The noise level of x_t is 1 - t; the loss is also reported in 10 bins of t, bin k holding
t in [k/10, (k+1)/10): bin 0 is the noisiest, bin 9 the cleanest.

Classifier-free guidance with weight w combines the conditional and the unconditional
(null label) velocities as
    v = v(x, t, y) + w * (v(x, t, y) - v(x, t, null)),
so w = 0 is plain conditional sampling (the paper's setting) and costs one network call per
step. Training drops the label to the null label with probability `label_dropout` so that
the unconditional branch exists.

`velocity` below is any function (params, x, t, y) -> v, e.g. a closure over unet.apply.
"""
import jax
import jax.numpy as jnp

NUM_BINS = 10


def interpolate(x_data, noise, t):
    """x_t for images (B, H, W, C) and times (B,)."""
    t = t[:, None, None, None]
    return t * x_data + (1 - t) * noise


def per_sample_loss(velocity, params, x_data, labels, noise, t):
    """Squared error of the velocity, averaged over pixels: (B,)."""
    v_pred = velocity(params, interpolate(x_data, noise, t), t, labels)
    return jnp.mean((v_pred - (x_data - noise)) ** 2, axis=(1, 2, 3))


def training_loss(velocity, params, keys, x_data, labels, *, null_label, label_dropout):
    """Mean loss over a batch. keys: (B,) one PRNG key per example, which draws its noise,
    its t ~ U[0, 1] and whether its label is dropped, so an example's randomness does not
    depend on which device or batch slot it lands in."""
    def draw(key):
        k_noise, k_t, k_drop = jax.random.split(key, 3)
        return (jax.random.normal(k_noise, x_data.shape[1:]), jax.random.uniform(k_t),
                jax.random.bernoulli(k_drop, label_dropout))

    noise, t, drop = jax.vmap(draw)(keys)
    labels = jnp.where(drop, null_label, labels)
    return per_sample_loss(velocity, params, x_data, labels, noise, t).mean()


def stratified_times(key, n):
    """n times with the same count in every bin: sample i lies in bin i % NUM_BINS.

    Evaluation uses these with fixed noise, so losses at different steps differ only by
    the network, and the per-bin means all rest on n / NUM_BINS samples."""
    u = jax.random.uniform(key, (n,))
    return (jnp.arange(n) % NUM_BINS + u) / NUM_BINS


def bin_means(t, losses):
    """Mean loss in each of the NUM_BINS bins of t: (NUM_BINS,), NaN for an empty bin."""
    bins = jnp.clip((t * NUM_BINS).astype(jnp.int32), 0, NUM_BINS - 1)
    sums = jnp.zeros(NUM_BINS).at[bins].add(losses)
    counts = jnp.zeros(NUM_BINS).at[bins].add(1.0)
    return sums / counts


def guided_velocity(velocity, params, x, t, labels, *, null_label, guidance):
    if guidance == 0.0:  # static: plain conditional sampling costs one call
        return velocity(params, x, t, labels)
    both = velocity(params, jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                    jnp.concatenate([labels, jnp.full_like(labels, null_label)]))
    cond, uncond = jnp.split(both, 2)
    return cond + guidance * (cond - uncond)


def sample(velocity, params, noise, labels, *, steps, null_label, guidance=0.0):
    """Euler integration from t = 0 (noise, (B, H, W, C)) to t = 1 in `steps` equal steps,
    as one lax.fori_loop, so it jits into a single program. Returns x at t = 1."""
    dt = 1.0 / steps

    def euler_step(i, x):
        t = jnp.full((x.shape[0],), i * dt)
        v = guided_velocity(velocity, params, x, t, labels, null_label=null_label, guidance=guidance)
        return x + dt * v

    return jax.lax.fori_loop(0, steps, euler_step, noise)
