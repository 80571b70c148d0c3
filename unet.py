"""Class-conditional U-Net in pure JAX: params are nested dicts of arrays, init and apply
are plain functions.

The architecture is the ADM U-Net (Dhariwal & Nichol 2021), inferred from the parameter
counts the paper publishes (docs/METHODS.md, "Architecture, and what is inferred"):
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
import functools
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
    # GroupNorm: a layer of C channels normalizes gcd(norm_groups, C) groups, the paper's 32
    # where C is a multiple of 32; 0 normalizes each channel on its own at every width (the
    # cpu model axis: gcd(32, C) makes the group sizes change unevenly with small C)
    norm_groups: int = 32
    # dtype of the inputs of the convolutions and linear layers ("float32": no cast); they
    # accumulate in the activations' dtype; params, normalization, attention and the residual
    # stream are never cast
    compute_dtype: str = "float32"  # or "bfloat16" (docs/METHODS.md, "Precision")

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
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"compute_dtype {self.compute_dtype!r}: use 'float32' or 'bfloat16'")
        if self.norm_groups < 0:
            raise ValueError(f"norm_groups {self.norm_groups}: use a positive count, or 0 for one group per channel")
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


def matmul_dtype(cfg):
    """The dtype conv and dense cast their inputs to: None (no cast) for 'float32'."""
    return None if cfg.compute_dtype == "float32" else jnp.dtype(cfg.compute_dtype)


def dense(p, x, dtype=None):
    """x @ w + b; with a dtype, the product's inputs in it, accumulated in x's own dtype."""
    out, w = x.dtype, p["w"]
    if dtype is not None:
        x, w = x.astype(dtype), w.astype(dtype)
    return jnp.matmul(x, w, preferred_element_type=out) + p["b"]


def conv(p, x, dtype=None):
    """Stride-1 'same' convolution, NHWC with an HWIO kernel; 1x1 is a matmul over channels.

    XLA's own convolution, on every backend, rather than an im2col matmul: the 9 shifted
    copies would cost more memory traffic than they save. On a CPU, parallel.py picks XLA's
    Eigen convolution over its YNNPACK one (bench.py measures both). With a dtype, inputs in
    it, accumulated and returned in x's own dtype."""
    out, w = x.dtype, p["w"]
    if dtype is not None:
        x, w = x.astype(dtype), w.astype(dtype)
    if w.shape[0] == 1:
        y = jnp.matmul(x, w[0, 0], preferred_element_type=out)
    else:
        y = jax.lax.conv_general_dilated(x, w, window_strides=(1, 1), padding="SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                         preferred_element_type=out)
    return y + p["b"]


# GroupNorm. The math of group_norm below is the textbook one:
#     x_hat = (x - mean) / sqrt(var + eps),   mean and var over each image's channel group,
#     y = x_hat * gamma + beta,               optionally followed by SiLU.
# Its backward is written by hand (normalize_affine): left to autodiff, the mean, the
# variance and the affine each add passes over the activations and the residuals they keep,
# and at the small channel counts of the CPU configs such passes cost as much as the matmuls.
# The hand-written backward recomputes x_hat from x and needs two passes: one for the two
# per-channel sums below, one for dx.


def groups_of(channels, norm_groups):
    """The GroupNorm groups of a layer: gcd(norm_groups, C); C (one per channel) if norm_groups is 0."""
    return channels if norm_groups == 0 else math.gcd(norm_groups, channels)


def group_total(v, groups):
    """(B, C) -> (B, G): sums over the channels of each group."""
    b, c = v.shape
    return v.reshape(b, groups, c // groups).sum(axis=-1)


def per_channel(v, channels):
    """(B, G) -> (B, 1, 1, C): each channel gets its group's value."""
    return jnp.repeat(v, channels // v.shape[1], axis=1)[:, None, None, :]


def group_stats(x, groups, eps):
    """Mean and 1/sqrt(var + eps) of each image's channel groups, (B, G) each. Sums over
    (H, W) per channel first, then over a group's channels (cheaper than one reduction over
    the strided (H, W, channels-of-the-group) block)."""
    b, h, w, c = x.shape
    n = h * w * (c // groups)  # values per group
    mean = group_total(x.sum(axis=(1, 2)), groups) / n
    var = group_total(jnp.square(x - per_channel(mean, c)).sum(axis=(1, 2)), groups) / n
    return mean, jax.lax.rsqrt(var + eps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def normalize_affine(x, gamma, beta, groups, silu, eps):
    """x_hat * gamma + beta over `groups` channel groups, then SiLU if silu; gamma, beta: (B, C)."""
    return _normalize_affine_fwd(x, gamma, beta, groups, silu, eps)[0]


def _normalize_affine_fwd(x, gamma, beta, groups, silu, eps):
    mean, rstd = group_stats(x, groups, eps)
    c = x.shape[-1]
    z = (x - per_channel(mean, c)) * per_channel(rstd, c) * gamma[:, None, None] + beta[:, None, None]
    return (jax.nn.silu(z) if silu else z), (x, gamma, beta, mean, rstd)


def _normalize_affine_bwd(groups, silu, eps, residuals, dy):
    x, gamma, beta, mean, rstd = residuals
    b, h, w, c = x.shape
    x_hat = (x - per_channel(mean, c)) * per_channel(rstd, c)
    dz = dy
    if silu:  # d silu(z) / dz = s (1 + z (1 - s)), s = sigmoid(z)
        z = x_hat * gamma[:, None, None] + beta[:, None, None]
        s = jax.nn.sigmoid(z)
        dz = dy * s * (1 + z * (1 - s))
    dbeta = dz.sum(axis=(1, 2))  # (B, C)
    dgamma = (dz * x_hat).sum(axis=(1, 2))  # (B, C)
    # with g = dz * gamma, the gradient through the normalization is
    #   dx = rstd * (g - mean_group(g) - x_hat * mean_group(g * x_hat))
    # and the group means come from the two (B, C) sums above
    n = h * w * (c // groups)
    mean_g = per_channel(group_total(gamma * dbeta, groups) / n, c)
    mean_gx = per_channel(group_total(gamma * dgamma, groups) / n, c)
    dx = per_channel(rstd, c) * (dz * gamma[:, None, None] - mean_g - x_hat * mean_gx)
    return dx, dgamma, dbeta


normalize_affine.defvjp(_normalize_affine_fwd, _normalize_affine_bwd)


def group_norm(p, x, norm_groups, scale=None, shift=None, silu=False, eps=1e-5):
    """GroupNorm of x (B, H, W, C) over groups_of(C, norm_groups) groups, with the affine
    p["scale"], p["bias"]; where given, then * (1 + scale) + shift with scale, shift (B, C)
    from the embedding; then SiLU if silu."""
    b, c = x.shape[0], x.shape[-1]
    gamma, beta = jnp.broadcast_to(p["scale"], (b, c)), jnp.broadcast_to(p["bias"], (b, c))
    if scale is not None:
        gamma, beta = gamma * (1 + scale), beta * (1 + scale) + shift
    return normalize_affine(x, gamma, beta, groups_of(c, norm_groups), silu, eps)


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


def res_block(p, x, emb, norm_groups, resample=None, dtype=None):
    """x: (B, H, W, c_in), emb: (B, embed_dim); resample None, 'down' or 'up'; dtype: conv's."""
    h = group_norm(p["norm1"], x, norm_groups, silu=True)
    if resample is not None:  # BigGAN style: resample inside the block, no extra convs
        change = downsample if resample == "down" else upsample
        h, x = change(h), change(x)
    h = conv(p["conv1"], h, dtype)
    scale, shift = jnp.split(dense(p["embed"], jax.nn.silu(emb), dtype), 2, axis=-1)  # (B, c_out) each
    h = conv(p["conv2"], group_norm(p["norm2"], h, norm_groups, scale, shift, silu=True), dtype)
    skip = conv(p["skip"], x, dtype) if "skip" in p else x
    return skip + h


def attention_init(key, c):
    k1, k2 = jax.random.split(key)
    return {"norm": norm_init(c), "qkv": conv_init(k1, c, 3 * c, size=1),
            "out": conv_init(k2, c, c, size=1, zero=True)}


@jax.custom_vjp
def softmax_attention(q, k, v):
    """softmax(q k^T) v over the last two axes (positions, features); q comes scaled by
    1/sqrt(d). Its backward is written by hand, with FlashAttention's identity: softmax's
    backward needs rowsum(dP * P) over the (positions x positions) matrices, which equals
    rowsum(dO * O) over the far smaller outputs, which saves a pass over the attention
    matrices in the backward."""
    return _softmax_attention_fwd(q, k, v)[0]


def _softmax_attention_fwd(q, k, v):
    weights = jax.nn.softmax(q @ k.swapaxes(-1, -2), axis=-1)
    out = weights @ v
    return out, (q, k, v, weights, out)


def _softmax_attention_bwd(residuals, d_out):
    q, k, v, weights, out = residuals
    d_weights = d_out @ v.swapaxes(-1, -2)
    d_logits = weights * (d_weights - jnp.sum(d_out * out, axis=-1, keepdims=True))
    return d_logits @ k, d_logits.swapaxes(-1, -2) @ q, weights.swapaxes(-1, -2) @ d_out


softmax_attention.defvjp(_softmax_attention_fwd, _softmax_attention_bwd)


def attention(p, x, head_dim, norm_groups, dtype=None):
    """Multi-head self-attention over the H*W positions, residual; the 1x1 convs in dtype."""
    b, h, w, c = x.shape
    n_heads = heads(c, head_dim)
    d = c // n_heads
    x_norm = group_norm(p["norm"], x, norm_groups)

    def project(i):
        """q, k, v (i = 0, 1, 2): one matmul on its own column block of the qkv weight, (B, heads,
        HW, d). One (B*HW, 3C) product split afterwards would compute the same, but the gradient
        of that split is a pad-and-transpose into (3C, B*HW) that costs XLA on a CPU more than
        the matmuls themselves (bench.py --profile)."""
        block = {"w": p["qkv"]["w"][..., i * c:(i + 1) * c], "b": p["qkv"]["b"][i * c:(i + 1) * c]}
        return conv(block, x_norm, dtype).reshape(b, h * w, n_heads, d).transpose(0, 2, 1, 3)

    out = softmax_attention(project(0) / math.sqrt(d), project(1), project(2))
    return x + conv(p["out"], out.transpose(0, 2, 1, 3).reshape(b, h, w, c), dtype)


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


def run_block(p, blk, h, emb, cfg):
    dtype = matmul_dtype(cfg)
    h = res_block(p["res"], h, emb, cfg.norm_groups, blk.resample, dtype)
    return attention(p["attn"], h, cfg.head_dim, cfg.norm_groups, dtype) if blk.attn else h


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
    dtype = matmul_dtype(cfg)
    emb = noise_features(t, cfg.embed_dim)
    emb = dense(params["noise_embed"]["dense2"], jax.nn.silu(dense(params["noise_embed"]["dense1"], emb, dtype)), dtype)
    is_null = (y == cfg.num_classes)[:, None]
    emb = emb + jnp.where(is_null, 0.0, params["class_embed"][jnp.minimum(y, cfg.num_classes - 1)])

    h = conv(params["conv_in"], x, dtype)
    skips = [h]
    for i, blk in enumerate(down):
        h = run_block(params["down"][f"{i:02d}"], blk, h, emb, cfg)
        skips.append(h)
    for i, blk in enumerate(middle):
        h = run_block(params["middle"][f"{i:02d}"], blk, h, emb, cfg)
    for i, blk in enumerate(up):
        if blk.resample is None:  # every block that keeps the resolution eats one skip
            h = jnp.concatenate([h, skips.pop()], axis=-1)
        h = run_block(params["up"][f"{i:02d}"], blk, h, emb, cfg)
    assert not skips, "every skip connection is consumed"
    return conv(params["conv_out"], group_norm(params["norm_out"], h, cfg.norm_groups, silu=True), dtype)


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
