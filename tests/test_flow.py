"""Rectified flow: the time convention at its endpoints, the sampler against closed-form
velocity fields, guidance, the stratified evaluation times and the per-bin means."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flow


def test_interpolation_endpoints_and_velocity():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 3))
    noise = jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
    np.testing.assert_array_equal(flow.interpolate(x, noise, jnp.zeros(2)), noise)  # t = 0: noise
    np.testing.assert_array_equal(flow.interpolate(x, noise, jnp.ones(2)), x)  # t = 1: data
    t, h = jnp.full(2, 0.3), 1e-2  # the target x - noise is dx_t/dt
    slope = (flow.interpolate(x, noise, t + h) - flow.interpolate(x, noise, t)) / h
    np.testing.assert_allclose(slope, x - noise, rtol=1e-3, atol=1e-3)


def test_loss_of_the_zero_predictor_is_the_target_energy():
    x = jax.random.normal(jax.random.key(0), (3, 4, 4, 3))
    noise = jax.random.normal(jax.random.key(1), (3, 4, 4, 3))
    zero = lambda params, x_t, t, y: jnp.zeros_like(x_t)
    losses = flow.per_sample_loss(zero, None, x, jnp.zeros(3, int), noise, jnp.full(3, 0.5))
    np.testing.assert_allclose(losses, np.mean((np.asarray(x) - np.asarray(noise)) ** 2, axis=(1, 2, 3)), rtol=1e-6)


def test_sampler_lands_on_a_single_data_point_exactly():
    """For data = one point x*, the exact velocity is (x* - x_t) / (1 - t); Euler's last step
    (from t = 1 - dt) then lands on x* exactly, whatever the noise."""
    target = jnp.array([0.5, -1.0, 2.0]).reshape(1, 1, 1, 3)
    velocity = lambda params, x, t, y: (target - x) / (1 - t)[:, None, None, None]
    noise = jax.random.normal(jax.random.key(0), (4, 1, 1, 3))
    out = flow.sample(velocity, None, noise, jnp.zeros(4, int), steps=7, null_label=10)
    np.testing.assert_allclose(out, np.broadcast_to(target, out.shape), atol=1e-5)


def test_sampler_transports_noise_to_a_gaussian():
    """Data ~ N(m, s^2): the exact rectified-flow velocity E[x - noise | x_t] is linear in
    x_t; integrating it maps N(0, 1) onto N(m, s^2)."""
    m, s = 1.5, 0.5

    def velocity(params, x, t, y):
        t = t[:, None, None, None]
        var = t ** 2 * s ** 2 + (1 - t) ** 2
        e_data = m + t * s ** 2 / var * (x - t * m)
        e_noise = (1 - t) / var * (x - t * m)
        return e_data - e_noise

    noise = jax.random.normal(jax.random.key(0), (20000, 1, 1, 1))
    out = np.asarray(flow.sample(velocity, None, noise, jnp.zeros(20000, int), steps=200, null_label=10))
    assert abs(out.mean() - m) < 0.02 and abs(out.std() - s) < 0.02


def test_guidance_extrapolates_from_the_unconditional_velocity():
    null = 10
    velocity = lambda params, x, t, y: jnp.ones_like(x) * jnp.where(y == null, 1.0, 3.0)[:, None, None, None]
    x, t, y = jnp.zeros((2, 1, 1, 1)), jnp.zeros(2), jnp.array([0, 1])
    for w in (0.0, 0.5, 2.0):
        v = flow.guided_velocity(velocity, None, x, t, y, null_label=null, guidance=w)
        np.testing.assert_allclose(v, 3.0 + w * (3.0 - 1.0))


def test_training_noise_depends_on_the_example_key_not_its_batch_slot():
    x = jax.random.normal(jax.random.key(0), (4, 4, 4, 3))
    y = jnp.arange(4)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(5), jnp.arange(4))
    velocity = lambda params, x_t, t, labels: x_t * t[:, None, None, None] + labels[:, None, None, None]
    loss = lambda k, xs, ys: flow.training_loss(velocity, None, k, xs, ys, null_label=10, label_dropout=0.5)
    halves = (loss(keys[:2], x[:2], y[:2]) + loss(keys[2:], x[2:], y[2:])) / 2
    np.testing.assert_allclose(loss(keys, x, y), halves, rtol=1e-6)
    order = jnp.array([2, 0, 3, 1])
    np.testing.assert_allclose(loss(keys, x, y), loss(keys[order], x[order], y[order]), rtol=1e-6)


@pytest.mark.parametrize("n", [10, 40, 123])
def test_stratified_times_fill_every_bin_and_bin_means_match_numpy(n):
    t = np.asarray(flow.stratified_times(jax.random.key(0), n))
    bins = np.floor(t * flow.NUM_BINS).astype(int)
    counts = np.bincount(bins, minlength=flow.NUM_BINS)
    assert counts.max() - counts.min() <= 1 and (bins == np.arange(n) % flow.NUM_BINS).all()
    losses = np.random.default_rng(0).random(n)
    want = [losses[bins == k].mean() for k in range(flow.NUM_BINS)]
    np.testing.assert_allclose(flow.bin_means(jnp.asarray(t), jnp.asarray(losses)), want, rtol=1e-5)
