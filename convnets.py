"""The two published feature networks ported to JAX: pytorch-fid's Inception-v3 (FID) and the
ResNet-50 trunk of SSCD (copy detection). Their layers, their parameters built from a torch
state dict (BatchNorm folded into each convolution), random weights of the same names and
shapes (tests, benchmarks), and the forward passes. features.py turns them into feature
spaces; tests/test_features.py checks them against torchvision and pytorch-fid.

    params = params_from_torch_state("inception", state)   # state: {torch name: numpy array}
    pooled = fid_inception_v3(params, x)                     # x (N, 299, 299, 3) in [-1, 1]

Activations are NHWC, kernels HWIO.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

HIGHEST = lax.Precision.HIGHEST  # no TF32/bf16 passes on GPUs: FID is sensitive to small feature errors


class WeightsError(ValueError):
    """A weight file that is not the network's: damaged, another file, or other keys."""


# ---------------------------------------------------------------------------------------
# Layers: NHWC activations, HWIO kernels, BatchNorm folded into each convolution's bias

def conv(p, x, stride=1, same=True):
    """x (N, H, W, C_in) -> (N, H', W', C_out). same=True pads k//2 on both sides, as torch's
    padding=k//2 (XLA's 'SAME' would pad a stride-2 conv asymmetrically); False pads nothing."""
    kh, kw = p["kernel"].shape[:2]
    padding = [(kh // 2, kh // 2), (kw // 2, kw // 2)] if same else [(0, 0), (0, 0)]
    y = lax.conv_general_dilated(x, p["kernel"], (stride, stride), padding,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=HIGHEST)
    return y + p["bias"]


def basic_conv(p, x, stride=1, same=True):
    """torchvision's BasicConv2d: conv, BatchNorm (folded into p), ReLU."""
    return jax.nn.relu(conv(p, x, stride, same))


def max_pool_3x3(x, stride, pad):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 3, 3, 1), (1, stride, stride, 1),
                             [(0, 0), (pad, pad), (pad, pad), (0, 0)])


def avg_pool_3x3_excluding_padding(x):
    """3x3 stride 1 pad 1 average over the in-image pixels only (count_include_pad=False, as
    TensorFlow's pooling that the FID weights were trained with)."""
    window, pads = (1, 3, 3, 1), [(0, 0), (1, 1), (1, 1), (0, 0)]
    sums = lax.reduce_window(x, 0.0, lax.add, window, (1, 1, 1, 1), pads)
    ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
    counts = lax.reduce_window(ones, 0.0, lax.add, window, (1, 1, 1, 1), pads)  # (1, H, W, 1): 4, 6 or 9
    return sums / counts


def bilinear_resize_matrix(n_in, n_out):
    """(n_out, n_in) weights of torch's bilinear interpolation, align_corners=False, no antialias,
    computed in float32 as torch does (float64 coordinates would differ by up to 2e-5)."""
    scale = np.float32(n_in) / np.float32(n_out)
    # each output pixel's centre, in input pixel coordinates
    source = scale * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    source = np.maximum(source, np.float32(0))  # torch clamps at the first pixel
    low = np.floor(source)
    high_weight = source - low
    low = low.astype(int)
    matrix = np.zeros((n_out, n_in), np.float32)
    np.add.at(matrix, (np.arange(n_out), low), np.float32(1) - high_weight)
    high = np.minimum(low + 1, n_in - 1)  # past the last pixel both weights fall on it
    np.add.at(matrix, (np.arange(n_out), high), high_weight)
    return matrix


def resize_bilinear(x, size):
    """(N, H, W, C) -> (N, size, size, C), separable: one matrix product per axis."""
    x = jnp.einsum("oh,nhwc->nowc", bilinear_resize_matrix(x.shape[1], size), x, precision=HIGHEST)
    return jnp.einsum("ow,nhwc->nhoc", bilinear_resize_matrix(x.shape[2], size), x, precision=HIGHEST)


# ---------------------------------------------------------------------------------------
# Parameters from torch state dicts. A network is described by its conv units:
# {our name: (torch conv module, torch BatchNorm module, torch weight shape (C_out, C_in, kh, kw))}

def inception_a_shapes(c_in, pool_features):
    return {"branch1x1": (64, c_in, 1, 1), "branch5x5_1": (48, c_in, 1, 1),
            "branch5x5_2": (64, 48, 5, 5),
            "branch3x3dbl_1": (64, c_in, 1, 1), "branch3x3dbl_2": (96, 64, 3, 3),
            "branch3x3dbl_3": (96, 96, 3, 3), "branch_pool": (pool_features, c_in, 1, 1)}


def inception_b_shapes(c_in):
    return {"branch3x3": (384, c_in, 3, 3), "branch3x3dbl_1": (64, c_in, 1, 1),
            "branch3x3dbl_2": (96, 64, 3, 3), "branch3x3dbl_3": (96, 96, 3, 3)}


def inception_c_shapes(c_in, c7):
    return {"branch1x1": (192, c_in, 1, 1), "branch7x7_1": (c7, c_in, 1, 1),
            "branch7x7_2": (c7, c7, 1, 7), "branch7x7_3": (192, c7, 7, 1),
            "branch7x7dbl_1": (c7, c_in, 1, 1), "branch7x7dbl_2": (c7, c7, 7, 1),
            "branch7x7dbl_3": (c7, c7, 1, 7), "branch7x7dbl_4": (c7, c7, 7, 1),
            "branch7x7dbl_5": (192, c7, 1, 7), "branch_pool": (192, c_in, 1, 1)}


def inception_d_shapes(c_in):
    return {"branch3x3_1": (192, c_in, 1, 1), "branch3x3_2": (320, 192, 3, 3),
            "branch7x7x3_1": (192, c_in, 1, 1), "branch7x7x3_2": (192, 192, 1, 7),
            "branch7x7x3_3": (192, 192, 7, 1), "branch7x7x3_4": (192, 192, 3, 3)}


def inception_e_shapes(c_in):
    return {"branch1x1": (320, c_in, 1, 1), "branch3x3_1": (384, c_in, 1, 1),
            "branch3x3_2a": (384, 384, 1, 3), "branch3x3_2b": (384, 384, 3, 1),
            "branch3x3dbl_1": (448, c_in, 1, 1), "branch3x3dbl_2": (384, 448, 3, 3),
            "branch3x3dbl_3a": (384, 384, 1, 3), "branch3x3dbl_3b": (384, 384, 3, 1),
            "branch_pool": (192, c_in, 1, 1)}


def inception_units():
    """torchvision Inception3 names: every BasicConv2d X holds X.conv and X.bn."""
    shapes = {"Conv2d_1a_3x3": (32, 3, 3, 3), "Conv2d_2a_3x3": (32, 32, 3, 3), "Conv2d_2b_3x3": (64, 32, 3, 3),
              "Conv2d_3b_1x1": (80, 64, 1, 1), "Conv2d_4a_3x3": (192, 80, 3, 3)}
    blocks = {"Mixed_5b": inception_a_shapes(192, 32), "Mixed_5c": inception_a_shapes(256, 64),
              "Mixed_5d": inception_a_shapes(288, 64), "Mixed_6a": inception_b_shapes(288),
              "Mixed_6b": inception_c_shapes(768, 128), "Mixed_6c": inception_c_shapes(768, 160),
              "Mixed_6d": inception_c_shapes(768, 160), "Mixed_6e": inception_c_shapes(768, 192),
              "Mixed_7a": inception_d_shapes(768), "Mixed_7b": inception_e_shapes(1280),
              "Mixed_7c": inception_e_shapes(2048)}
    shapes.update({f"{block}.{conv}": shape for block, convs in blocks.items()
                   for conv, shape in convs.items()})
    return {name: (f"{name}.conv", f"{name}.bn", shape) for name, shape in shapes.items()}


def resnet50_units():
    """torchvision resnet50 names: conv1/bn1, layerL.B.convI/bnI, layerL.0.downsample.0/.1."""
    units = {"conv1": ("conv1", "bn1", (64, 3, 7, 7))}
    c_in = 64
    for layer, (n_blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
        for block in range(n_blocks):
            name = f"layer{layer}.{block}"
            shapes = [(width, c_in, 1, 1), (width, width, 3, 3), (4 * width, width, 1, 1)]
            units.update({f"{name}.conv{i}": (f"{name}.conv{i}", f"{name}.bn{i}", shape)
                          for i, shape in enumerate(shapes, start=1)})
            if block == 0:  # the first block changes channels (and stride): a projected shortcut
                units[f"{name}.downsample"] = (f"{name}.downsample.0", f"{name}.downsample.1",
                                               (4 * width, c_in, 1, 1))
            c_in = 4 * width
    return units


def strip_prefix(state, anchor, anchor_shape, source):
    """Drop the prefix ('backbone.', 'module.', ...) that the file puts before the first conv's weight."""
    candidates = [key[:-len(anchor)] for key, value in state.items()
                  if key.endswith(anchor) and value.shape == anchor_shape]
    prefixes = [prefix for prefix in candidates if prefix == "" or prefix.endswith(".")]
    if len(prefixes) != 1:
        raise WeightsError(f"{source}: expected one '<prefix>{anchor}' of shape {anchor_shape}, found "
                         f"{len(prefixes)}; the file's keys begin {sorted(state)[:4]}")
    return {key[len(prefixes[0]):]: value for key, value in state.items() if key.startswith(prefixes[0])}


def fold_batchnorm(state, units, eps, source):
    """{our name: {"kernel": (kh, kw, C_in, C_out), "bias": (C_out,)}}, each conv followed by its
    eval-mode BatchNorm merged in: bn(conv(x)) = conv(x) * scale + (beta - mean * scale)."""
    first_conv, _, first_shape = next(iter(units.values()))
    state = strip_prefix(state, f"{first_conv}.weight", first_shape, source)
    expected = {f"{conv}.weight": shape for conv, _, shape in units.values()}
    expected.update({f"{bn}.{stat}": shape[:1] for _, bn, shape in units.values()
                     for stat in ("weight", "bias", "running_mean", "running_var")})
    missing = [key for key in expected if key not in state]
    wrong = [f"{key} {state[key].shape} != {shape}" for key, shape in expected.items()
             if key in state and state[key].shape != shape]
    if missing or wrong:
        raise WeightsError(f"{source}: {len(missing)} of {len(expected)} expected weights missing "
                         f"(e.g. {missing[:3]}), wrong shapes: {wrong[:3]}; "
                         f"the file's keys begin {sorted(state)[:4]}")
    params = {}
    for name, (conv_name, bn, _) in units.items():
        scale = state[f"{bn}.weight"] / np.sqrt(state[f"{bn}.running_var"] + eps)  # (C_out,)
        kernel = state[f"{conv_name}.weight"] * scale[:, None, None, None]  # (C_out, C_in, kh, kw)
        params[name] = {"kernel": kernel.transpose(2, 3, 1, 0),  # (kh, kw, C_in, C_out)
                        "bias": state[f"{bn}.bias"] - state[f"{bn}.running_mean"] * scale}
    return params


def nest(flat):
    """{"a.b.c": leaf} -> {"a": {"b": {"c": leaf}}}: module paths become nested dicts."""
    tree = {}
    for path, leaf in flat.items():
        *parents, last = path.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = leaf
    return tree


def sscd_projection(state, source):
    """The 2048->512 linear map: the one (512, 2048) matrix in the file (torchvision format:
    backbone.fc; a classy-format file would call it embeddings.1), and its bias."""
    found = [key for key, value in state.items() if key.endswith("weight") and value.shape == (512, 2048)]
    if len(found) != 1 or found[0][:-len("weight")] + "bias" not in state:
        raise WeightsError(f"{source}: expected one (512, 2048) projection '<prefix>fc.weight' with its bias, "
                         f"found {found}")
    return {"kernel": state[found[0]].T, "bias": state[found[0][:-len("weight")] + "bias"]}


def params_from_torch_state(space, state, source="weights"):
    if space == "inception":
        return nest(fold_batchnorm(state, inception_units(), eps=1e-3, source=source))
    params = nest(fold_batchnorm(state, resnet50_units(), eps=1e-5, source=source))
    params["fc"] = sscd_projection(state, source)
    return params


def random_torch_state(space, seed=0):
    """A torch-named state dict of random weights (benchmarks, tests): He-initialised convs keep
    activations of order 1; random BatchNorm statistics so folding is exercised."""
    rng = np.random.default_rng(seed)
    state = {}
    units = inception_units() if space == "inception" else resnet50_units()
    for conv_name, bn, (c_out, c_in, kh, kw) in units.values():
        state[f"{conv_name}.weight"] = rng.normal(0, np.sqrt(2 / (c_in * kh * kw)), (c_out, c_in, kh, kw))
        state[f"{bn}.weight"], state[f"{bn}.running_var"] = rng.uniform(0.5, 1.5, (2, c_out))
        state[f"{bn}.bias"], state[f"{bn}.running_mean"] = rng.normal(0, 0.1, (2, c_out))
    if space == "sscd":
        state["fc.weight"], state["fc.bias"] = rng.normal(0, 2048 ** -0.5, (512, 2048)), np.zeros(512)
    return {name: value.astype(np.float32) for name, value in state.items()}
# ---------------------------------------------------------------------------------------
# The networks

def chain(p, x, *names):
    for name in names:
        x = basic_conv(p[name], x)
    return x


def inception_a(p, x):  # 35x35
    return jnp.concatenate([basic_conv(p["branch1x1"], x), chain(p, x, "branch5x5_1", "branch5x5_2"),
                            chain(p, x, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
                            basic_conv(p["branch_pool"], avg_pool_3x3_excluding_padding(x))], axis=-1)


def inception_b(p, x):  # 35x35 -> 17x17
    return jnp.concatenate([basic_conv(p["branch3x3"], x, stride=2, same=False),
                            basic_conv(p["branch3x3dbl_3"], chain(p, x, "branch3x3dbl_1", "branch3x3dbl_2"),
                                       stride=2, same=False),
                            max_pool_3x3(x, stride=2, pad=0)], axis=-1)


def inception_c(p, x):  # 17x17
    return jnp.concatenate([basic_conv(p["branch1x1"], x),
                            chain(p, x, "branch7x7_1", "branch7x7_2", "branch7x7_3"),
                            chain(p, x, *[f"branch7x7dbl_{i}" for i in range(1, 6)]),
                            basic_conv(p["branch_pool"], avg_pool_3x3_excluding_padding(x))], axis=-1)


def inception_d(p, x):  # 17x17 -> 8x8
    return jnp.concatenate([basic_conv(p["branch3x3_2"], basic_conv(p["branch3x3_1"], x), stride=2, same=False),
                            basic_conv(p["branch7x7x3_4"], chain(p, x, "branch7x7x3_1", "branch7x7x3_2",
                                                                 "branch7x7x3_3"), stride=2, same=False),
                            max_pool_3x3(x, stride=2, pad=0)], axis=-1)


def inception_e(p, x, pool):  # 8x8
    branch3x3 = basic_conv(p["branch3x3_1"], x)
    branch3x3dbl = chain(p, x, "branch3x3dbl_1", "branch3x3dbl_2")
    return jnp.concatenate([basic_conv(p["branch1x1"], x),
                            basic_conv(p["branch3x3_2a"], branch3x3), basic_conv(p["branch3x3_2b"], branch3x3),
                            basic_conv(p["branch3x3dbl_3a"], branch3x3dbl),
                            basic_conv(p["branch3x3dbl_3b"], branch3x3dbl),
                            basic_conv(p["branch_pool"], pool(x))], axis=-1)


def fid_inception_v3(p, x):
    """x (N, 299, 299, 3) in [-1, 1] -> (N, 8, 8, 2048), the output of Mixed_7c."""
    x = basic_conv(p["Conv2d_1a_3x3"], x, stride=2, same=False)
    x = basic_conv(p["Conv2d_2b_3x3"], basic_conv(p["Conv2d_2a_3x3"], x, same=False))
    x = basic_conv(p["Conv2d_3b_1x1"], max_pool_3x3(x, stride=2, pad=0))
    x = max_pool_3x3(basic_conv(p["Conv2d_4a_3x3"], x, same=False), stride=2, pad=0)
    for block in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        x = inception_a(p[block], x)
    x = inception_b(p["Mixed_6a"], x)
    for block in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        x = inception_c(p[block], x)
    x = inception_d(p["Mixed_7a"], x)
    x = inception_e(p["Mixed_7b"], x, avg_pool_3x3_excluding_padding)
    # pytorch-fid: the FID network max-pools here (a quirk of the TensorFlow graph)
    return inception_e(p["Mixed_7c"], x, functools.partial(max_pool_3x3, stride=1, pad=1))


def bottleneck(p, x, stride):
    y = jax.nn.relu(conv(p["conv1"], x))
    y = jax.nn.relu(conv(p["conv2"], y, stride))  # torchvision strides the 3x3 conv (ResNet v1.5)
    y = conv(p["conv3"], y)
    return jax.nn.relu(y + (conv(p["downsample"], x, stride) if "downsample" in p else x))


def resnet50_trunk(p, x):
    """x (N, H, W, 3) -> (N, H/32, W/32, 2048)."""
    x = max_pool_3x3(jax.nn.relu(conv(p["conv1"], x, stride=2)), stride=2, pad=1)
    for layer, stride in zip(("layer1", "layer2", "layer3", "layer4"), (1, 2, 2, 2)):
        for block in range(len(p[layer])):
            x = bottleneck(p[layer][str(block)], x, stride if block == 0 else 1)
    return x


def gem_pool(x, power=3.0, eps=1e-6):
    """Generalized mean over H and W, (N, H, W, C) -> (N, C); SSCD clamps at eps before the power."""
    return jnp.mean(jnp.maximum(x, eps) ** power, axis=(1, 2)) ** (1 / power)
