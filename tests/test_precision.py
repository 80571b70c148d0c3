"""The precision policy: bfloat16 inputs to the U-Net's convolutions and linear layers,
float32 everywhere else. Tested on the CPU: the float32 path never touches bfloat16; the
bfloat16 forward is float32's up to bfloat16 rounding; and a small trained model samples the
same copies and the same sliced Wasserstein distance in either precision."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import data
import flow
import metrics
import parallel
import train
from conftest import TINY


def velocity_and_params(cfg, dtype):
    params = train.init_state(cfg)["params"]
    # a fresh U-Net's closing convolutions are zero: perturb every weight so all layers act
    rng = np.random.default_rng(1)
    params = jax.tree.map(lambda x: x + jnp.asarray(0.05 * rng.standard_normal(x.shape), jnp.float32), params)
    return train.velocity_fn(cfg, dtype), params


def test_unknown_compute_dtype_is_a_one_line_error():
    with pytest.raises(ValueError, match="compute_dtype 'float16'"):
        train.Config(**TINY, sample_dtype="float16")


@pytest.mark.parametrize("dtype, has_bf16", [("float32", False), ("bfloat16", True)])
def test_bfloat16_appears_only_in_the_bfloat16_train_step(dtype, has_bf16):
    cfg = train.Config(**TINY, train_dtype=dtype)
    velocity, params = velocity_and_params(cfg, None)
    x, t, y = jnp.zeros((4, 8, 8, 3)), jnp.full((4,), 0.5), jnp.zeros((4,), jnp.int32)
    grad = jax.grad(lambda p: jnp.mean(velocity(p, x, t, y) ** 2))
    hlo = jax.jit(grad).lower(params).as_text()
    assert ("bf16" in hlo) == has_bf16
    # whatever the compute dtype: float32 parameters, float32 gradients (optimizer state alike)
    assert {g.dtype for g in jax.tree.leaves(jax.eval_shape(grad, params))} == {jnp.dtype("float32")}


def test_bfloat16_forward_is_float32_up_to_bfloat16_rounding():
    cfg = train.Config(**TINY)
    f32, params = velocity_and_params(cfg, "float32")
    bf16, _ = velocity_and_params(cfg, "bfloat16")
    rng = np.random.default_rng(0)
    x, t = jnp.asarray(rng.normal(size=(8, 8, 8, 3)), jnp.float32), jnp.asarray(rng.uniform(size=8), jnp.float32)
    y = jnp.asarray(rng.integers(0, 11, 8))
    want, got = np.asarray(f32(params, x, t, y)), np.asarray(bf16(params, x, t, y))
    assert got.dtype == np.float32
    relative = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert 1e-4 < relative < 3e-2  # bfloat16 has 8 mantissa bits (2^-9 = 0.2% per rounding)


def test_a_trained_model_samples_the_same_in_bfloat16_as_in_float32():
    """Memorization score (copy fraction) and SWD of 64 samples from a model trained to copy
    its 4 images: within 1/16 (four samples) and 10% of each other."""
    cfg = train.Config(**dict(TINY, num_train=4, lr=3e-3, ema_decay=0.99, batch_size=4, conditional=False))
    dataset = data.load_shapes(cfg.num_train, cfg.num_test, size=cfg.image_size)
    step, state = train.make_train_step(cfg), parallel.replicate(train.init_state(cfg))
    batch = [parallel.shard(a) for a in (data.to_model_range(dataset.train_images),
                                         np.full(4, cfg.num_classes, np.int32), np.arange(4, dtype=np.int32))]
    for _ in range(1000):
        state, _ = step(state, *batch)
    ema = jax.tree.map(jnp.asarray, parallel.unreplicate(state)["ema"])
    noise = jax.random.normal(jax.random.key(7), (64, 8, 8, 3))
    labels = jnp.full((64,), cfg.num_classes)
    results = {}
    for dtype in ("float32", "bfloat16"):
        samples = flow.sample(train.velocity_fn(cfg, dtype), ema, noise, labels, steps=20, null_label=cfg.num_classes)
        images = data.to_uint8(np.asarray(samples))
        ratio, _ = metrics.nearest_neighbour_ratio(images, dataset.train_images)
        swd = metrics.sliced_wasserstein(data.to_model_range(images), data.to_model_range(dataset.train_images))
        results[dtype] = metrics.copy_fraction(ratio), swd
    (copies32, swd32), (copies16, swd16) = results["float32"], results["bfloat16"]
    print(f"copy fraction {copies32:.3f} (float32), {copies16:.3f} (bfloat16); SW2 {swd32:.4f}, {swd16:.4f}")
    assert copies32 > 0.4  # the model does copy: the comparison means something
    assert abs(copies16 - copies32) <= 1 / 16
    assert abs(swd16 - swd32) <= 0.1 * swd32


def test_sample_dtype_reaches_the_evaluation_sampler(tmp_path, monkeypatch):
    seen = []
    real = train.velocity_fn

    def spy(cfg, compute_dtype=None):
        seen.append(compute_dtype or cfg.train_dtype)
        return real(cfg, compute_dtype)

    monkeypatch.setattr(train, "velocity_fn", spy)
    cfg = dataclasses.replace(train.Config(**TINY, sample_dtype="bfloat16"), run_dir=str(tmp_path / "run"),
                              data_dir=str(tmp_path / "data"))
    train.train(cfg)
    assert "bfloat16" in seen and "float32" in seen
