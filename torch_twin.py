"""A PyTorch twin of unet.py: the same ADM U-Net as plain torch modules, built from a
unet.UNetConfig, which loads our parameter dicts and computes the same function.

Imported only by the tests (tests/test_torch_twin.py checks it against unet.apply) and by
`bench.py --torch`, the yardstick of its speed; torch is a test requirement, never a run-time one. Layout NCHW, as is usual in torch; `TorchUNet.forward` takes and returns
NCHW, `velocity_nhwc` wraps it for our NHWC arrays.

Weight layouts, ours -> torch: dense w (in, out) -> Linear.weight (out, in); conv w HWIO
(kh, kw, in, out) -> Conv2d.weight OIHW (out, in, kh, kw); the rest as is.

    twin = TorchUNet(cfg).load(params)        # params: our nested dict (jax or numpy arrays)
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import unet


def as_tensor(a):
    return torch.from_numpy(np.array(a, dtype=np.float32))


def set_dense(linear, p):
    with torch.no_grad():
        linear.weight.copy_(as_tensor(p["w"]).T)
        linear.bias.copy_(as_tensor(p["b"]))


def set_conv(conv, p):
    with torch.no_grad():
        conv.weight.copy_(as_tensor(p["w"]).permute(3, 2, 0, 1))  # HWIO -> OIHW
        conv.bias.copy_(as_tensor(p["b"]))


def set_norm(norm, p):
    with torch.no_grad():
        norm.weight.copy_(as_tensor(p["scale"]))
        norm.bias.copy_(as_tensor(p["bias"]))


def group_norm(channels, norm_groups):
    """unet.group_norm: unet.groups_of's groups (gcd(norm_groups, C), or C); eps 1e-5."""
    return nn.GroupNorm(unet.groups_of(channels, norm_groups), channels, eps=1e-5)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, [resample], 3x3 conv; GroupNorm * (1 + scale) + shift from the
    embedding; SiLU, 3x3 conv; plus the (1x1-projected where channels change) skip."""

    def __init__(self, c_in, c_out, embed_dim, norm_groups, resample=None):
        super().__init__()
        self.resample = resample
        self.norm1 = group_norm(c_in, norm_groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.embed = nn.Linear(embed_dim, 2 * c_out)
        self.norm2 = group_norm(c_out, norm_groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def load(self, p):
        set_norm(self.norm1, p["norm1"])
        set_conv(self.conv1, p["conv1"])
        set_dense(self.embed, p["embed"])
        set_norm(self.norm2, p["norm2"])
        set_conv(self.conv2, p["conv2"])
        if self.skip is not None:
            set_conv(self.skip, p["skip"])

    def change(self, x):
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def forward(self, x, emb):
        h = self.change(F.silu(self.norm1(x)))
        x = self.change(x)
        h = self.conv1(h)
        scale, shift = self.embed(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return (x if self.skip is None else self.skip(x)) + h


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual. The qkv projection's
    output channels are ordered (q|k|v, head, head_dim), as in unet.attention."""

    def __init__(self, channels, head_dim, norm_groups):
        super().__init__()
        self.heads = unet.heads(channels, head_dim)
        self.norm = group_norm(channels, norm_groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def load(self, p):
        set_norm(self.norm, p["norm"])
        set_conv(self.qkv, p["qkv"])
        set_conv(self.out, p["out"])

    def forward(self, x):
        b, c, h, w = x.shape
        d = c // self.heads
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, d, h * w)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # (B, heads, HW, d) each
        out = F.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1) @ v  # (B, heads, HW, d)
        return x + self.out(out.transpose(-1, -2).reshape(b, c, h, w))


class Block(nn.Module):
    """unet.run_block: a residual block, optionally followed by attention."""

    def __init__(self, blk, embed_dim, head_dim, norm_groups):
        super().__init__()
        self.res = ResBlock(blk.c_in, blk.c_out, embed_dim, norm_groups, blk.resample)
        self.attn = Attention(blk.c_out, head_dim, norm_groups) if blk.attn else None

    def load(self, p):
        self.res.load(p["res"])
        if self.attn is not None:
            self.attn.load(p["attn"])

    def forward(self, h, emb):
        h = self.res(h, emb)
        return h if self.attn is None else self.attn(h)


class TorchUNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        down, middle, up = unet.layout(cfg)
        E, C = cfg.embed_dim, cfg.base_channels
        self.dense1, self.dense2 = nn.Linear(E, E), nn.Linear(E, E)
        self.class_embed = nn.Parameter(torch.zeros(cfg.num_classes, E))
        self.conv_in = nn.Conv2d(3, C, 3, padding=1)
        self.down = nn.ModuleList(Block(b, E, cfg.head_dim, cfg.norm_groups) for b in down)
        self.middle = nn.ModuleList(Block(b, E, cfg.head_dim, cfg.norm_groups) for b in middle)
        self.up = nn.ModuleList(Block(b, E, cfg.head_dim, cfg.norm_groups) for b in up)
        self.keeps_resolution = [b.resample is None for b in up]
        self.norm_out = group_norm(C, cfg.norm_groups)
        self.conv_out = nn.Conv2d(C, 3, 3, padding=1)

    def load(self, params):
        """Copy our nested parameter dict into the modules; returns self."""
        set_dense(self.dense1, params["noise_embed"]["dense1"])
        set_dense(self.dense2, params["noise_embed"]["dense2"])
        with torch.no_grad():
            self.class_embed.copy_(as_tensor(params["class_embed"]))
        set_conv(self.conv_in, params["conv_in"])
        for name in ("down", "middle", "up"):
            for i, block in enumerate(getattr(self, name)):
                block.load(params[name][f"{i:02d}"])
        set_norm(self.norm_out, params["norm_out"])
        set_conv(self.conv_out, params["conv_out"])
        return self

    def noise_features(self, t):
        half = self.cfg.embed_dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
        args = 1000.0 * t[:, None] * freqs
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, x, t, y):
        """x: (B, 3, H, W), t: (B,), y: (B,) int64 in [0, num_classes] (num_classes: null)."""
        emb = self.dense2(F.silu(self.dense1(self.noise_features(t))))
        is_null = (y == self.cfg.num_classes)[:, None]
        emb = emb + torch.where(is_null, 0.0, self.class_embed[y.clamp(max=self.cfg.num_classes - 1)])
        h = self.conv_in(x)
        skips = [h]
        for block in self.down:
            h = block(h, emb)
            skips.append(h)
        for block in self.middle:
            h = block(h, emb)
        for block, keeps in zip(self.up, self.keeps_resolution):
            if keeps:
                h = torch.cat([h, skips.pop()], dim=1)
            h = block(h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))

    def velocity_nhwc(self, x, t, y):
        """forward on NHWC tensors, as unet.apply takes them."""
        return self.forward(x.permute(0, 3, 1, 2), t, y).permute(0, 2, 3, 1)
