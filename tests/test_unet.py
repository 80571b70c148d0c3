"""The U-Net: the paper's parameter counts, the CPU convolution against XLA's, the layers
against plain numpy, and the null label."""
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
def test_im2col_convolution_equals_xla_convolution(c_in, c_out, k):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 6, 7, c_in)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((k, k, c_in, c_out)), jnp.float32)
    np.testing.assert_allclose(unet.conv_im2col(x, w), unet.conv_xla(x, w), rtol=1e-5, atol=1e-5)


def test_group_norm_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 4, 48)).astype(np.float32) * 3 + 1
    p = {"scale": rng.standard_normal(48).astype(np.float32), "bias": rng.standard_normal(48).astype(np.float32)}
    groups = 16  # gcd(32, 48)
    xg = x.reshape(2, 16, groups, 3)
    mean = xg.mean(axis=(1, 3), keepdims=True)
    var = xg.var(axis=(1, 3), keepdims=True)
    want = ((xg - mean) / np.sqrt(var + 1e-5)).reshape(x.shape) * p["scale"] + p["bias"]
    np.testing.assert_allclose(unet.group_norm(p, jnp.asarray(x)), want, rtol=1e-4, atol=1e-4)


def test_attention_matches_a_loop_over_heads_in_numpy():
    rng = np.random.default_rng(2)
    c, head_dim = 16, 8
    p = unet.attention_init(jax.random.key(0), c)
    p["out"]["w"] = jnp.asarray(rng.standard_normal(p["out"]["w"].shape), jnp.float32)  # not zero
    x = rng.standard_normal((2, 3, 3, c)).astype(np.float32)
    h = np.asarray(unet.group_norm(p["norm"], jnp.asarray(x))).reshape(2, 9, c)
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
    np.testing.assert_allclose(unet.attention(p, jnp.asarray(x), head_dim), want, rtol=1e-4, atol=1e-4)


TINY_UNET = unet.UNetConfig(image_size=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                            attention_resolutions=(4,), head_dim=8, embed_dim=32)


def test_fresh_network_predicts_zero_and_labels_matter_once_trained():
    cfg = TINY_UNET
    params = unet.init(jax.random.key(0), cfg)
    x = jax.random.normal(jax.random.key(1), (3, 8, 8, 3))
    t = jnp.array([0.1, 0.5, 0.9])
    y = jnp.array([0, 3, cfg.num_classes])  # the last is the null label
    out = unet.apply(params, x, t, y, cfg)
    assert out.shape == x.shape
    np.testing.assert_array_equal(out, 0.0)  # zero-initialized output conv, as in ADM
    # with every weight random (no zero-initialized layers left), the label changes the
    # output, and the null label is the network with no class embedding added
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    params = jax.tree.unflatten(treedef, [0.3 * jax.random.normal(k, p.shape) for k, p in zip(keys, leaves)])
    one = lambda p, label: unet.apply(p, x[:1], t[:1], jnp.array([label]), cfg)
    assert not np.allclose(one(params, 0), one(params, 3), atol=1e-3)
    no_class = dict(params, class_embed=jnp.zeros_like(params["class_embed"]))
    np.testing.assert_allclose(one(params, cfg.num_classes), one(no_class, 0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fields, message", [
    (dict(image_size=30), "image_size 30 does not halve 2 times"),
    (dict(attention_resolutions=(12,)), r"attention_resolutions \[12\] do not occur"),
    (dict(base_channels=100, head_dim=64), "200 channels at 16x16 do not split into 3 attention heads"),
    (dict(channel_mult=()), "must be positive"),
])
def test_settings_the_network_cannot_take_are_one_line_errors(fields, message):
    with pytest.raises(ValueError, match=message) as error:
        unet.UNetConfig(**fields)
    assert "\n" not in str(error.value)
