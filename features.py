"""Feature spaces for the metrics: raw pixels, a random ConvNet, the FID Inception-v3 and
SSCD, in pure JAX.

    pixels     no weights: the image itself, flattened (H, W, C order), values in [0, 1]
    randconv   no weights: a fixed random network (three 3x3 conv + ReLU layers of 64, 128
               and 256 channels, 2x2 average pooling between them, weights drawn from a
               seeded generator); the features are each channel's mean and standard
               deviation over the image, 896-d. It sees edges and textures that pixel
               moments miss (colour noise with the data's pixel mean and covariance is close
               to real images in pixel SW2 and FID, far in this space), with no download:
               a check on pixel-space fidelity, not a perceptual standard like Inception.
    inception  pytorch-fid's Inception-v3 (TensorFlow's FID network ported to torch): the
               2048-d average pool after Mixed_7c, images resized (bilinear, no antialias)
               to 299x299 and scaled to [-1, 1] exactly as pytorch-fid does
    sscd       SSCD sscd_disc_mixup: torchvision ResNet-50 trunk, GeM pooling (p=3), a
               2048->512 linear map, L2 normalization; images resized to 288x288
               (bilinear) and normalized with the ImageNet mean and std

Conventions. Every extractor takes uint8 numpy images (N, H, W, 3), NHWC, 0..255: datasets
are stored so, and model samples in [-1, 1] go through data.to_uint8 first (quantized as a
saved PNG would be, as FID practice does). It returns float32 numpy features (N, D).

Weights are read from weights_dir, else $DIFFMEM_WEIGHTS, else ~/.cache/diffmem/weights,
and downloaded there when missing. The published .pth files are read without torch by
torchfile.py (which refuses anything but dicts and tensors), then cached once as
<name>.npz beside the original. fingerprint(space) names everything the features depend on
(this file's code, the weights, the input size), so cached features of a dataset are
recomputed when any of it changes.

    python features.py --download   fetch and convert the weights (needs internet)
    python bench.py --features      images/s of each space on this machine
"""
import argparse
import functools
import hashlib
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import convnets
import files
import torchfile
from convnets import WeightsError  # every problem with a weight file is one error

WEIGHTS = {  # space: (url, SHA-256 prefix published in the file name, or None)
    "inception": ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                  "pt_inception-2015-12-05-6726825d.pth", "6726825d"),
    "sscd": ("https://dl.fbaipublicfiles.com/sscd-copy-detection/sscd_disc_mixup.torchvision.pt", None),
}
SPACES = ("pixels", "randconv", "inception", "sscd")

RANDCONV_WIDTHS, RANDCONV_SEED = (64, 128, 256), 0
DEFAULT_RESIZE = {"inception": 299, "sscd": 288}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


# ---------------------------------------------------------------------------------------
# Weight files on disk: download, hash check, conversion to .npz

def default_weights_dir():
    return os.environ.get("DIFFMEM_WEIGHTS") or os.path.expanduser("~/.cache/diffmem/weights")


def weight_paths(space, weights_dir=None):
    """(published file, our .npz cache) for a space."""
    weights_dir = os.path.expanduser(weights_dir or default_weights_dir())
    file_name = WEIGHTS[space][0].rsplit("/", 1)[1]
    cache_name = file_name.rsplit(".", 1)[0] + ".npz"
    return os.path.join(weights_dir, file_name), os.path.join(weights_dir, cache_name)


def check_sha256(path, expected_prefix, url):
    if expected_prefix is None:
        return
    found = files.file_hash(path, "sha256")[:len(expected_prefix)]
    if found != expected_prefix:
        raise WeightsError(f"{path}: SHA-256 begins {found}, expected {expected_prefix}: the file is damaged "
                         f"or not the published one; delete it and download it again from {url}")


def float32_if_float(array):
    """Our networks run in float32; half and bfloat16 weights would also not survive np.savez."""
    return array.astype(np.float32) if array.dtype.kind == "f" or array.dtype.name == "bfloat16" else array


def load_torch_state(space, weights_dir=None, allow_download=True):
    """The {torch name: array} weights of a space, from the .npz cache, else converted from the
    published file (downloaded first if missing and allowed)."""
    url, sha256_prefix = WEIGHTS[space]
    path, cache = weight_paths(space, weights_dir)
    if os.path.exists(cache):
        try:
            with np.load(cache, allow_pickle=False) as arrays:
                return dict(arrays)
        except (OSError, EOFError, ValueError, zipfile.BadZipFile):
            pass  # a damaged conversion: made again from the published file below
    if not os.path.exists(path):
        fix = f"download {url} and put it at {path} (or set $DIFFMEM_WEIGHTS to its folder)"
        if not allow_download:
            raise FileNotFoundError(f"{space} weights missing: {fix}")
        # the hash is checked before the file takes its final name
        files.download(url, path, check=lambda part: check_sha256(part, sha256_prefix, url))
    check_sha256(path, sha256_prefix, url)
    state = {name: float32_if_float(array) for name, array in torchfile.read_torch_file(path).items()}
    with files.atomic_write(cache) as file:  # a reader never sees half a cache
        np.savez(file, **state)
    return state


def available_spaces(weights_dir=None):
    """The spaces whose weights are present (pixels and randconv need none), in SPACES order."""
    return [space for space in SPACES
            if space not in WEIGHTS or any(map(os.path.exists, weight_paths(space, weights_dir)))]


def fingerprint(space, weights_dir=None, resize_to=None):
    """A short hash of everything the features of `space` depend on: the source of this file
    (the preprocessing) and of convnets.py (the networks), the converted weights' bytes and
    the input size."""
    digest = hashlib.sha256(f"{space}:{resize_to or DEFAULT_RESIZE.get(space)}".encode())
    for code in (__file__, convnets.__file__):
        with open(code, "rb") as source:
            digest.update(source.read())
    if space in WEIGHTS:
        load_torch_state(space, weights_dir, allow_download=False)  # converts the published file once
        digest.update(files.file_hash(weight_paths(space, weights_dir)[1]).encode())
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# The randconv network's fixed weights

def randconv_params(widths=RANDCONV_WIDTHS, seed=RANDCONV_SEED):
    """The randconv network: {'layers': [{'kernel': (3, 3, C_in, C_out), 'bias': zeros}, ...]},
    He-normal kernels (std sqrt(2 / fan_in)) so activations stay of order 1 through the ReLUs."""
    rng, c_in, layers = np.random.default_rng(seed), 3, []
    for c_out in widths:
        kernel = rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2 / (9 * c_in))
        layers.append({"kernel": kernel.astype(np.float32), "bias": np.zeros(c_out, np.float32)})
        c_in = c_out
    return {"layers": layers}



# ---------------------------------------------------------------------------------------
# Per-space features of a uint8 batch (N, H, W, 3)

def check_images(images):
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
            and images.shape[-1] == 3 and len(images) > 0):
        raise TypeError("features take uint8 numpy images (N, H, W, 3) with N > 0; "
                        "model samples in [-1, 1] go through data.to_uint8 first")
    return images


def pixel_features(images):
    """(N, H*W*3) in [0, 1]. Plain numpy: exact, and nothing a device would speed up."""
    return check_images(images).reshape(len(images), -1).astype(np.float32) / 255


def randconv_features(params, images):
    """(N, 2 * sum(widths)): for each layer, every channel's mean, then its standard deviation,
    over the image (texture statistics, blind to where things are)."""
    x = images.astype(jnp.float32) / 127.5 - 1  # (N, H, W, 3) in [-1, 1]
    statistics = []
    for i, layer in enumerate(params["layers"]):
        if i > 0:  # 2x2 average pooling: (N, H, W, C) -> (N, H/2, W/2, C)
            x = lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4
        x = jax.nn.relu(convnets.conv(layer, x))
        statistics += [jnp.mean(x, axis=(1, 2)), jnp.std(x, axis=(1, 2))]
    return jnp.concatenate(statistics, axis=-1)


def inception_features(params, images, size=299):
    x = convnets.resize_bilinear(images.astype(jnp.float32) / 255, size)  # pytorch-fid: [0, 1], resize, then 2x-1
    return jnp.mean(convnets.fid_inception_v3(params, 2 * x - 1), axis=(1, 2))  # (N, 2048)


def sscd_features(params, images, size=288):
    x = (convnets.resize_bilinear(images.astype(jnp.float32) / 255, size) - IMAGENET_MEAN) / IMAGENET_STD
    trunk = convnets.gem_pool(convnets.resnet50_trunk(params, x))  # (N, 2048)
    embedding = jnp.dot(trunk, params["fc"]["kernel"], precision=convnets.HIGHEST)
    embedding = embedding + params["fc"]["bias"]  # (N, 512)
    return embedding / jnp.maximum(jnp.linalg.norm(embedding, axis=-1, keepdims=True), 1e-12)


def jit_batches(apply, params, images, batch=64):
    """apply(params, images) over batches of `batch` images on one device, jitted; the last
    batch is padded so every call has the same shape. Evaluation passes parallel.over_devices
    instead, which spreads each batch over every device (the project's one pmap)."""
    apply = jax.jit(apply)
    outputs = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        padded = np.concatenate([chunk, np.zeros((min(batch, len(images)) - len(chunk), *chunk.shape[1:]), np.uint8)])
        outputs.append(np.asarray(apply(params, padded))[:len(chunk)])
    return np.concatenate(outputs).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Entry points

def network_and_params(space, torch_state=None, *, resize_to=None, source="given state"):
    """(apply(params, uint8 images), params) of a network space: randconv with its fixed
    weights, or Inception / SSCD with the weights of torch_state (a {torch name: array} dict,
    published or random) and input size resize_to (default 299 / 288)."""
    if space == "randconv":
        return randconv_features, randconv_params()
    network = inception_features if space == "inception" else sscd_features
    return (functools.partial(network, size=resize_to or DEFAULT_RESIZE[space]),
            convnets.params_from_torch_state(space, torch_state, source))


def feature_extractor(space, weights_dir=None, *, resize_to=None, allow_download=True,
                      torch_state=None, map_batches=jit_batches):
    """extract(uint8 images (N, H, W, 3)) -> float32 (N, D) for space in SPACES. resize_to
    overrides the network's input size (299 / 288); torch_state, a {torch name: array} dict,
    replaces the published weights (random weights, tests); map_batches(apply, params,
    images) runs the network over the images (evaluation passes parallel.over_devices)."""
    if space == "pixels":
        return pixel_features
    if space not in SPACES:
        raise ValueError(f"unknown feature space {space!r}; expected one of {SPACES}")
    source = "given state"
    if space in WEIGHTS and torch_state is None:
        torch_state = load_torch_state(space, weights_dir, allow_download)
        source = weight_paths(space, weights_dir)[0]
    apply, params = network_and_params(space, torch_state, resize_to=resize_to, source=source)
    return lambda images: map_batches(apply, params, check_images(images))


def extract_features(space, images, weights_dir=None, **options):
    """One-off feature extraction; build feature_extractor once for repeated calls (it compiles)."""
    return feature_extractor(space, weights_dir, **options)(images)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--download", action="store_true", help="download and convert the published weights")
    parser.add_argument("--weights-dir", default=None,
                        help="default: $DIFFMEM_WEIGHTS or ~/.cache/diffmem/weights")
    args = parser.parse_args()
    if args.download:
        for space in WEIGHTS:
            load_torch_state(space, args.weights_dir)
            print(f"{space}: {weight_paths(space, args.weights_dir)[1]}")
    else:
        parser.print_help()
