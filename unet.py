"""Class-conditional U-Net in pure JAX: params are nested dicts of arrays, init and apply
are plain functions.

The architecture is the ADM U-Net (Dhariwal & Nichol 2021), inferred from the parameter
counts the paper publishes (see README, "Architecture"):
  - noise level t -> 512 sinusoidal features -> Linear(512, 512), SiLU, Linear(512, 512);
    class label -> Embedding(10, 512), added. Label `num_classes` (10) is the null label of
    classifier-free guidance: it adds nothing, so it costs no parameters.
  - 3x3 conv in; per level (channel multipliers 1, 2, 4 of the base channels C) 3 residual
    blocks, then a BigGAN-style residual block that halves the resolution (not after the
    last level); self-attention after every block at 16x16 and 8x8; middle: res, attn,
    res; the up path mirrors it with 4 blocks per level, each taking one skip connection,
    and residual blocks that double the resolution; GroupNorm, SiLU, 3x3 conv out.
  - residual block: GroupNorm, SiLU, 3x3 conv; Linear(512 -> 2*c_out) scale-and-shift of
    the second GroupNorm; SiLU, 3x3 conv; 1x1 conv on the skip only where channels change.
The convolutions closing a residual branch and the output conv start at zero (as in ADM),
so a fresh network is the identity on its skips and predicts zero velocity.

Layout NHWC, images in [-1, 1]. The network owns its configuration, UNetConfig below;
train.py builds one from the run's flat Config.

    python unet.py                  # parameter counts of the paper's five model sizes
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, kw_only=True)
class UNetConfig:
    """The paper's U-Net (92.7M parameters) by default; base_channels 16, 32, 64, 128, 192
    give its five model sizes."""
    image_size: int = 32
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 4)  # one level per entry; len - 1 downsamplings
    num_res_blocks: int = 3
    attention_resolutions: tuple[int, ...] = (16, 8)
    head_dim: int = 64
    embed_dim: int = 512
    num_classes: int = 10  # label num_classes is the null label

    def __post_init__(self):
        """Settings the network cannot be built with: a one-line ValueError, not a reshape
        traceback deep inside apply."""
        levels = len(self.channel_mult)
        if levels < 1 or min(self.channel_mult) < 1 or self.base_channels < 1 or self.num_res_blocks < 1:
            raise ValueError(f"channel_mult {self.channel_mult}, base_channels {self.base_channels} and "
                             f"num_res_blocks {self.num_res_blocks} must be positive")
        if self.image_size % 2 ** (levels - 1):
            raise ValueError(f"image_size {self.image_size} does not halve {levels - 1} times "
                             f"(channel_mult has {levels} levels): use a multiple of {2 ** (levels - 1)}")
        resolutions = [self.image_size // 2 ** level for level in range(levels)]
        if unused := [r for r in self.attention_resolutions if r not in resolutions]:
            raise ValueError(f"attention_resolutions {unused} do not occur: the levels of a "
                             f"{self.image_size}x{self.image_size} U-Net are {resolutions}")
        for level, mult in enumerate(self.channel_mult):
            channels = mult * self.base_channels
            attends = resolutions[level] in self.attention_resolutions or level == levels - 1  # middle
            if attends and channels % heads(channels, self.head_dim):
                raise ValueError(f"{channels} channels at {resolutions[level]}x{resolutions[level]} do not "
                                 f"split into {heads(channels, self.head_dim)} attention heads of about "
                                 f"head_dim {self.head_dim}: change base_channels or head_dim")
        if self.embed_dim % 2 or self.num_classes < 1:
            raise ValueError(f"embed_dim must be even (got {self.embed_dim}) and num_classes positive "
                             f"(got {self.num_classes})")


def heads(channels, head_dim):
    """Attention heads at a level: channels / head_dim, at least one (ADM's num_head_channels)."""
    return max(1, channels // head_dim)


# --- layers -------------------------------------------------------------------------------


def dense_init(key, n_in, n_out, zero=False):
    w = jnp.zeros((n_in, n_out)) if zero else jax.random.normal(key, (n_in, n_out)) / math.sqrt(n_in)
    return {"w": w, "b": jnp.zeros((n_out,))}


def conv_init(key, c_in, c_out, size=3, zero=False):
    shape = (size, size, c_in, c_out)  # HWIO
    fan_in = size * size * c_in
    w = jnp.zeros(shape) if zero else jax.random.normal(key, shape) / math.sqrt(fan_in)
    return {"w": w, "b": jnp.zeros((c_out,))}


def norm_init(c):
    return {"scale": jnp.ones((c,)), "bias": jnp.zeros((c,))}


def dense(p, x):
    return x @ p["w"] + p["b"]


def conv_im2col(x, w):
    """3x3 'same' convolution as one matmul over the 9 shifted copies of the input.

    On a CPU this is ~3x faster than XLA's own convolution (shared/PERFORMANCE.md); it
    computes the same function, which tests/test_unet.py checks against lax.conv."""
    batch, height, width, c_in = x.shape
    k = w.shape[0]
    pad = k // 2
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    # (B, H, W, k*k*C_in), ordered (dy, dx, c_in) like the HWIO kernel's leading axes
    patches = jnp.concatenate(
        [xp[:, dy:dy + height, dx:dx + width] for dy in range(k) for dx in range(k)], axis=-1)
    return patches @ w.reshape(k * k * c_in, -1)


def conv_xla(x, w):
    return jax.lax.conv_general_dilated(
        x, w, window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def conv(p, x):
    """Stride-1 'same' convolution; the backend picks the fastest exact implementation."""
    w = p["w"]
    if w.shape[0] == 1:
        y = x @ w[0, 0]
    elif jax.default_backend() == "cpu":
        y = conv_im2col(x, w)
    else:  # cuDNN / TPU convolution units
        y = conv_xla(x, w)
    return y + p["b"]


def group_norm(p, x, eps=1e-5):
    """GroupNorm with 32 groups, or gcd(32, C) where C is not a multiple of 32 (small C)."""
    batch, height, width, channels = x.shape
    groups = math.gcd(32, channels)
    xg = x.reshape(batch, height, width, groups, channels // groups)  # (B, H, W, G, C/G)
    mean = xg.mean(axis=(1, 2, 4), keepdims=True)
    var = xg.var(axis=(1, 2, 4), keepdims=True)
    x = ((xg - mean) * jax.lax.rsqrt(var + eps)).reshape(x.shape)
    return x * p["scale"] + p["bias"]


def downsample(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))  # 2x2 average pool


def upsample(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest neighbour


# --- blocks -------------------------------------------------------------------------------


def res_block_init(key, c_in, c_out, embed_dim):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    p = {
        "norm1": norm_init(c_in),
        "conv1": conv_init(k1, c_in, c_out),
        "embed": dense_init(k2, embed_dim, 2 * c_out),
        "norm2": norm_init(c_out),
        "conv2": conv_init(k3, c_out, c_out, zero=True),
    }
    if c_in != c_out:
        p["skip"] = conv_init(k4, c_in, c_out, size=1)
    return p


def res_block(p, x, emb, resample=None):
    """x: (B, H, W, c_in), emb: (B, embed_dim); resample None, 'down' or 'up'."""
    h = jax.nn.silu(group_norm(p["norm1"], x))
    if resample is not None:  # BigGAN style: resample inside the block, no extra convs
        change = downsample if resample == "down" else upsample
        h, x = change(h), change(x)
    h = conv(p["conv1"], h)
    scale, shift = jnp.split(dense(p["embed"], jax.nn.silu(emb)), 2, axis=-1)  # (B, c_out) each
    h = group_norm(p["norm2"], h) * (1 + scale[:, None, None]) + shift[:, None, None]
    h = conv(p["conv2"], jax.nn.silu(h))
    skip = conv(p["skip"], x) if "skip" in p else x
    return skip + h


def attention_init(key, c):
    k1, k2 = jax.random.split(key)
    return {"norm": norm_init(c), "qkv": conv_init(k1, c, 3 * c, size=1),
            "out": conv_init(k2, c, c, size=1, zero=True)}


def attention(p, x, head_dim):
    """Multi-head self-attention over the H*W positions, residual."""
    b, h, w, c = x.shape
    n_heads = heads(c, head_dim)
    qkv = conv(p["qkv"], group_norm(p["norm"], x)).reshape(b, h * w, 3, n_heads, c // n_heads)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (B, HW, heads, d) each
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(c // n_heads)
    out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
    return x + conv(p["out"], out.reshape(b, h, w, c))


def noise_features(t, dim, max_period=10_000.0):
    """Sinusoidal features of the noise level t in [0, 1] (scaled by 1000, as for DDPM's
    integer timesteps, so the frequencies span the same range as in ADM)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half) / half)
    args = 1000.0 * t[:, None] * freqs  # (B, dim/2)
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


# --- the network --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    """One step of the U-Net's walk: a residual block, optionally followed by attention."""
    c_in: int
    c_out: int
    attn: bool
    resample: str | None = None  # 'down' | 'up' | None


def run_block(p, blk, h, emb, head_dim):
    h = res_block(p["res"], h, emb, blk.resample)
    return attention(p["attn"], h, head_dim) if blk.attn else h


def layout(cfg):
    """The static structure of the U-Net: lists of Blocks for the down, middle, up paths."""
    C, res = cfg.base_channels, cfg.image_size
    down, skip_channels = [], [C]  # the input conv's output is the first skip
    ch = C
    for level, mult in enumerate(cfg.channel_mult):
        for _ in range(cfg.num_res_blocks):
            down.append(Block(ch, mult * C, res in cfg.attention_resolutions))
            ch = mult * C
            skip_channels.append(ch)
        if level < len(cfg.channel_mult) - 1:
            down.append(Block(ch, ch, False, "down"))
            skip_channels.append(ch)
            res //= 2
    middle = [Block(ch, ch, True), Block(ch, ch, False)]  # res, attn, res
    up = []
    for level, mult in reversed(list(enumerate(cfg.channel_mult))):
        for _ in range(cfg.num_res_blocks + 1):
            up.append(Block(ch + skip_channels.pop(), mult * C, res in cfg.attention_resolutions))
            ch = mult * C
        if level > 0:
            up.append(Block(ch, ch, False, "up"))
            res *= 2
    return down, middle, up


def init(key, cfg):
    """Parameters of the U-Net described by cfg (a UNetConfig), as a nested dict of float32 arrays."""
    down, middle, up = layout(cfg)
    keys = iter(jax.random.split(key, 2 * (len(down) + len(middle) + len(up)) + 8))
    E, C = cfg.embed_dim, cfg.base_channels

    def blocks_init(blocks):
        out = {}
        for i, blk in enumerate(blocks):
            out[f"{i:02d}"] = {"res": res_block_init(next(keys), blk.c_in, blk.c_out, E)}
            if blk.attn:
                out[f"{i:02d}"]["attn"] = attention_init(next(keys), blk.c_out)
        return out

    return {
        "noise_embed": {"dense1": dense_init(next(keys), E, E), "dense2": dense_init(next(keys), E, E)},
        "class_embed": jax.random.normal(next(keys), (cfg.num_classes, E)),
        "conv_in": conv_init(next(keys), 3, C),
        "down": blocks_init(down),
        "middle": blocks_init(middle),
        "up": blocks_init(up),
        "norm_out": norm_init(C),
        "conv_out": conv_init(next(keys), C, 3, zero=True),
    }


def apply(params, x, t, y, cfg):
    """Velocity prediction. x: (B, H, W, 3) float, t: (B,) in [0, 1], y: (B,) int labels
    in [0, num_classes], where num_classes is the null label. Returns (B, H, W, 3)."""
    down, middle, up = layout(cfg)
    emb = noise_features(t, cfg.embed_dim)
    emb = dense(params["noise_embed"]["dense2"], jax.nn.silu(dense(params["noise_embed"]["dense1"], emb)))
    is_null = (y == cfg.num_classes)[:, None]
    emb = emb + jnp.where(is_null, 0.0, params["class_embed"][jnp.minimum(y, cfg.num_classes - 1)])

    h = conv(params["conv_in"], x)
    skips = [h]
    for i, blk in enumerate(down):
        h = run_block(params["down"][f"{i:02d}"], blk, h, emb, cfg.head_dim)
        skips.append(h)
    for i, blk in enumerate(middle):
        h = run_block(params["middle"][f"{i:02d}"], blk, h, emb, cfg.head_dim)
    for i, blk in enumerate(up):
        if blk.resample is None:  # every block that keeps the resolution eats one skip
            h = jnp.concatenate([h, skips.pop()], axis=-1)
        h = run_block(params["up"][f"{i:02d}"], blk, h, emb, cfg.head_dim)
    assert not skips, "every skip connection is consumed"
    return conv(params["conv_out"], jax.nn.silu(group_norm(params["norm_out"], h)))


def count_params(params):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(params))


# The paper's five model sizes (parameters) and the base channels that give them.
PAPER_MODEL_SIZES = {16: 2_926_690, 32: 7_929_010, 64: 25_751_890, 128: 92_670_610, 192: 201_286_610}


if __name__ == "__main__":
    for channels, paper in PAPER_MODEL_SIZES.items():
        cfg = UNetConfig(base_channels=channels)
        shapes = jax.eval_shape(lambda: init(jax.random.key(0), cfg))
        ours = count_params(shapes)
        print(f"C={channels:3d}  ours {ours:>11,}  paper {paper:>11,}  ({100 * (ours / paper - 1):+.3f}%)")
