"""The PyTorch twin (torch_twin.py) computes unet.apply's function: same outputs and
same parameter gradients on tiny configs with every weight random and non-zero, so a
benchmark against it compares the same network."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import unet

torch = pytest.importorskip("torch")
import torch_twin  # noqa: E402  (needs torch)

CONFIGS = {
    # two levels, one attention head, the 8-group GroupNorm of 8 and 16 channels
    "tiny": unet.UNetConfig(image_size=8, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                            attention_resolutions=(4,), head_dim=8, embed_dim=32),
    # three levels, several heads, attention at two resolutions, 8 and 16 groups
    "three_levels": unet.UNetConfig(image_size=8, base_channels=24, channel_mult=(1, 2, 1),
                                    num_res_blocks=1, attention_resolutions=(8, 2), head_dim=8,
                                    embed_dim=16, num_classes=5),
    # the same with one GroupNorm group per channel (the cpu model axis: norm_groups=0)
    "per_channel_norm": unet.UNetConfig(image_size=8, base_channels=24, channel_mult=(1, 2, 1),
                                        num_res_blocks=1, attention_resolutions=(8, 2), head_dim=8,
                                        embed_dim=16, num_classes=5, norm_groups=0),
}


def random_params(cfg, seed):
    """Every leaf random, the zero-initialized convs and the norms' scales and biases too
    (drawn with numpy: jax.random over a hundred small leaves compiles for many seconds)."""
    shapes = jax.eval_shape(lambda: unet.init(jax.random.key(0), cfg))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(0.3 * rng.standard_normal(s.shape), jnp.float32), shapes)


def inputs(cfg, seed):
    rng = np.random.default_rng(seed)
    b = 4
    x = rng.standard_normal((b, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
    t = np.array([0.0, 0.3, 0.77, 1.0], np.float32)
    y = np.array([0, cfg.num_classes - 1, cfg.num_classes, 2], np.int32)  # num_classes: null
    return x, t, y


def twin_output(twin, x, t, y):
    out = twin.velocity_nhwc(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y).long())
    return out.detach().numpy()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_twin_computes_the_same_velocity(name):
    cfg = CONFIGS[name]
    params = random_params(cfg, 0)
    twin = torch_twin.TorchUNet(cfg).load(params)
    assert sum(p.numel() for p in twin.parameters()) == unet.count_params(params)
    x, t, y = inputs(cfg, 1)
    apply = jax.jit(unet.apply, static_argnums=4)
    ours = np.asarray(apply(params, jnp.asarray(x), jnp.asarray(t), jnp.asarray(y), cfg))
    theirs = twin_output(twin, x, t, y)
    scale = np.abs(ours).max()
    assert scale > 1e-2  # a network that computes something
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-5 * scale)
    # and the labels matter: the null label is not class 0
    assert not np.allclose(ours[2], np.asarray(apply(params, jnp.asarray(x), jnp.asarray(t),
                                                     jnp.zeros(4, jnp.int32), cfg))[2], atol=1e-3)


def test_twin_gradients_match():
    """d loss / d params for a fixed linear loss, at parameters of every kind of layer."""
    cfg = CONFIGS["three_levels"]
    params = random_params(cfg, 2)
    x, t, y = inputs(cfg, 3)
    cotangent = np.random.default_rng(4).standard_normal(x.shape).astype(np.float32)

    loss = lambda p: jnp.sum(unet.apply(p, jnp.asarray(x), jnp.asarray(t), jnp.asarray(y), cfg) * cotangent)
    ours = jax.jit(jax.grad(loss))(params)

    twin = torch_twin.TorchUNet(cfg).load(params)
    out = twin.velocity_nhwc(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y).long())
    (out * torch.from_numpy(cotangent)).sum().backward()

    hwio = lambda g: g.detach().permute(2, 3, 1, 0).numpy()  # OIHW -> HWIO
    up = next(i for i, block in enumerate(twin.up) if block.res.skip is not None)  # a 1x1 skip conv
    pairs = [
        (ours["conv_in"]["w"], hwio(twin.conv_in.weight.grad)),
        (ours["conv_out"]["b"], twin.conv_out.bias.grad.numpy()),
        (ours["down"]["02"]["res"]["conv2"]["w"], hwio(twin.down[2].res.conv2.weight.grad)),
        (ours["down"]["00"]["res"]["norm1"]["scale"], twin.down[0].res.norm1.weight.grad.numpy()),
        (ours["down"]["00"]["attn"]["qkv"]["w"], hwio(twin.down[0].attn.qkv.weight.grad)),
        (ours["middle"]["00"]["res"]["embed"]["w"], twin.middle[0].res.embed.weight.grad.numpy().T),
        (ours["up"][f"{up:02d}"]["res"]["skip"]["w"], hwio(twin.up[up].res.skip.weight.grad)),
        (ours["noise_embed"]["dense1"]["w"], twin.dense1.weight.grad.numpy().T),
        (ours["class_embed"], twin.class_embed.grad.numpy()),
    ]
    for mine, theirs in pairs:
        mine = np.asarray(mine)
        assert np.abs(mine).max() > 0
        np.testing.assert_allclose(theirs, mine, rtol=1e-3, atol=1e-4 * np.abs(mine).max())
