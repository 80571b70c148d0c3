"""The U-Net: the paper's parameter counts, the layers against plain numpy (GroupNorm's
hand-written backward against autodiff of the textbook formula), and the null label."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import unet


@pytest.mark.parametrize("channels, paper", sorted(unet.PAPER_MODEL_SIZES.items()))
def test_parameter_counts_match_the_paper_within_1_percent(channels, paper):
    cfg = unet.UNetConfig(base_channels=channels)
    ours = unet.count_params(jax.eval_shape(lambda: unet.init(jax.random.key(0), cfg)))
    assert abs(ours / paper - 1) < 0.01, (ours, paper)


def test_parameter_count_is_the_papers_quadratic_in_the_channels():
    """The paper's counts fit 5090 C^2 + 68325 C + 530450; the quadratic term counts the
    C^2 weights of every conv and attention projection and must match exactly."""
    counts = [unet.count_params(jax.eval_shape(lambda: unet.init(jax.random.key(0), unet.UNetConfig(base_channels=c))))
              for c in (16, 32, 48)]
    second_difference = counts[2] - 2 * counts[1] + counts[0]  # equally spaced C: 2 * 16^2 * a
    assert second_difference == 2 * 16 ** 2 * 5090


@pytest.mark.parametrize("c_in, c_out, k", [(3, 8, 3), (16, 5, 3), (4, 4, 1)])
def test_convolution_matches_a_sum_over_taps_in_numpy(c_in, c_out, k):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 7, c_in)).astype(np.float32)
    p = {"w": rng.standard_normal((k, k, c_in, c_out)).astype(np.float32),
         "b": rng.standard_normal(c_out).astype(np.float32)}
    pad = k // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    want = p["b"] + sum(xp[:, dy:dy + 6, dx:dx + 7] @ p["w"][dy, dx] for dy in range(k) for dx in range(k))
    got = unet.conv(jax.tree.map(jnp.asarray, p), jnp.asarray(x))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def group_norm_reference(p, x, groups, scale=None, shift=None, silu=False, eps=1e-5):
    """The textbook GroupNorm over `groups` channel groups in plain jax.numpy, differentiated
    by autodiff: the reference for unet.group_norm's hand-written backward."""
    b, h, w, c = x.shape
    xg = x.reshape(b, h, w, groups, c // groups)
    mean = xg.mean(axis=(1, 2, 4), keepdims=True)
    var = ((xg - mean) ** 2).mean(axis=(1, 2, 4), keepdims=True)
    y = ((xg - mean) / jnp.sqrt(var + eps)).reshape(x.shape) * p["scale"] + p["bias"]
    if scale is not None:
        y = y * (1 + scale[:, None, None]) + shift[:, None, None]
    return jax.nn.silu(y) if silu else y


# (norm_groups, the groups of 48 channels): the paper's gcd(32, 48) = 16 groups of 3 channels,
# one group per channel (0, as on the cpu model axis), and 8 groups of 6
@pytest.mark.parametrize("norm_groups, groups", [(32, 16), (0, 48), (8, 8)])
def test_group_norm_matches_numpy(norm_groups, groups):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 4, 48)).astype(np.float32) * 3 + 1
    p = {"scale": rng.standard_normal(48).astype(np.float32), "bias": rng.standard_normal(48).astype(np.float32)}
    xg = x.reshape(2, 16, groups, 48 // groups)  # (B, H*W, groups, channels of a group)
    mean = xg.mean(axis=(1, 3), keepdims=True)
    var = xg.var(axis=(1, 3), keepdims=True)
    want = ((xg - mean) / np.sqrt(var + 1e-5)).reshape(x.shape) * p["scale"] + p["bias"]
    np.testing.assert_allclose(unet.group_norm(p, jnp.asarray(x), norm_groups), want, rtol=1e-4, atol=1e-4)
    # the embedding's modulation and the SiLU that follow it
    scale, shift = rng.standard_normal((2, 2, 48)).astype(np.float32)
    modulated = want * (1 + scale[:, None, None]) + shift[:, None, None]
    np.testing.assert_allclose(unet.group_norm(p, jnp.asarray(x), norm_groups, jnp.asarray(scale), jnp.asarray(shift), silu=True),
                               modulated / (1 + np.exp(-modulated)), rtol=1e-4, atol=1e-4)


# (channels, norm_groups, groups): groups of 1, 3, 2 and 1 channels
@pytest.mark.parametrize("channels, norm_groups, groups", [(16, 32, 16), (48, 32, 16), (64, 32, 32), (48, 0, 48)])
@pytest.mark.parametrize("modulated, silu", [(False, False), (False, True), (True, True)])
def test_group_norm_gradients_match_autodiff_of_the_textbook_formula(channels, norm_groups, groups, modulated, silu):
    rng = np.random.default_rng(channels)
    f32 = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
    x = 2 * f32(3, 5, 4, channels) + 0.5
    p = {"scale": f32(channels), "bias": f32(channels)}
    scale, shift = (f32(3, channels), f32(3, channels)) if modulated else (None, None)
    cotangent = f32(3, 5, 4, channels)
    loss = lambda norm, g: lambda p, x, scale, shift: jnp.sum(norm(p, x, g, scale, shift, silu=silu) * cotangent)
    argnums = (0, 1, 2, 3) if modulated else (0, 1)
    ours = jax.grad(loss(unet.group_norm, norm_groups), argnums)(p, x, scale, shift)
    want = jax.grad(loss(group_norm_reference, groups), argnums)(p, x, scale, shift)
    for mine, reference in zip(jax.tree.leaves(ours), jax.tree.leaves(want)):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-4 * float(jnp.abs(reference).max()))


def test_attention_matches_a_loop_over_heads_in_numpy():
    rng = np.random.default_rng(2)
    c, head_dim = 16, 8
    p = unet.attention_init(jax.random.key(0), c)
    p["out"]["w"] = jnp.asarray(rng.standard_normal(p["out"]["w"].shape), jnp.float32)  # not zero
    x = rng.standard_normal((2, 3, 3, c)).astype(np.float32)
    h = np.asarray(unet.group_norm(p["norm"], jnp.asarray(x), 32)).reshape(2, 9, c)
    qkv = h @ np.asarray(p["qkv"]["w"][0, 0]) + np.asarray(p["qkv"]["b"])  # (2, 9, 3c)
    out = np.zeros((2, 9, c), np.float32)
    for b in range(2):
        for head in range(c // head_dim):
            cols = slice(head * head_dim, (head + 1) * head_dim)
            q, k, v = qkv[b, :, :c][:, cols], qkv[b, :, c:2 * c][:, cols], qkv[b, :, 2 * c:][:, cols]
            logits = q @ k.T / np.sqrt(head_dim)
            weights = np.exp(logits - logits.max(1, keepdims=True))
            out[b, :, cols] = (weights / weights.sum(1, keepdims=True)) @ v
    want = x + (out @ np.asarray(p["out"]["w"][0, 0]) + np.asarray(p["out"]["b"])).reshape(x.shape)
    np.testing.assert_allclose(unet.attention(p, jnp.asarray(x), head_dim, 32), want, rtol=1e-4, atol=1e-4)


def test_attention_gradients_match_autodiff_of_the_plain_formula():
    rng = np.random.default_rng(3)
    q, k, v, cotangent = (jnp.asarray(rng.standard_normal((2, 3, 7, 5)), jnp.float32) for _ in range(4))
    plain = lambda q, k, v: jax.nn.softmax(q @ k.swapaxes(-1, -2), axis=-1) @ v
    np.testing.assert_allclose(unet.softmax_attention(q, k, v), plain(q, k, v), rtol=1e-5, atol=1e-5)
    loss = lambda attend: lambda q, k, v: jnp.sum(attend(q, k, v) * cotangent)
    ours = jax.grad(loss(unet.softmax_attention), (0, 1, 2))(q, k, v)
    want = jax.grad(loss(plain), (0, 1, 2))(q, k, v)
    for mine, reference in zip(ours, want):
        np.testing.assert_allclose(mine, reference, rtol=1e-4, atol=1e-5)


TINY_UNET = unet.UNetConfig(image_size=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                            attention_resolutions=(4,), head_dim=8, embed_dim=32)


def test_fresh_network_predicts_zero_and_labels_matter_once_trained():
    cfg = TINY_UNET
    params = unet.init(jax.random.key(0), cfg)
    x = jax.random.normal(jax.random.key(1), (3, 8, 8, 3))
    t = jnp.array([0.1, 0.5, 0.9])
    y = jnp.array([0, 3, cfg.num_classes])  # the last is the null label
    apply = jax.jit(unet.apply, static_argnums=4)  # one compilation, not one per eager op
    out = apply(params, x, t, y, cfg)
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, 0.0)  # zero-initialized output conv, as in ADM
    # with every weight random (no zero-initialized layers left), the label changes the
    # output, and the null label is the network with no class embedding added
    rng = np.random.default_rng(2)
    params = jax.tree.map(lambda p: jnp.asarray(0.3 * rng.standard_normal(p.shape), jnp.float32), params)
    one = lambda p, label: apply(p, x[:1], t[:1], jnp.array([label]), cfg)
    assert not np.allclose(one(params, 0), one(params, 3), atol=1e-3)
    no_class = dict(params, class_embed=jnp.zeros_like(params["class_embed"]))
    np.testing.assert_allclose(one(params, cfg.num_classes), one(no_class, 0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fields, message", [
    (dict(image_size=30), "image_size 30 does not halve 2 times"),
    (dict(attention_resolutions=(12,)), r"attention_resolutions \[12\] do not occur"),
    (dict(base_channels=100, head_dim=64), "200 channels at 16x16 do not split into 3 attention heads"),
    (dict(channel_mult=()), "must be positive"),
    (dict(norm_groups=-1), "norm_groups -1: use a positive count, or 0"),
])
def test_settings_the_network_cannot_take_are_one_line_errors(fields, message):
    with pytest.raises(ValueError, match=message) as error:
        unet.UNetConfig(**fields)
    assert "\n" not in str(error.value)
