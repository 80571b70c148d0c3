"""Tests of features.py: the JAX ports against torch references (same random weights, passed
through torch.save and our torch-free reader), weight files on disk and their error messages,
the pixel space, the random ConvNet against numpy, the cache fingerprint, and multi-device
extraction. torch is imported only here, lazily."""
import hashlib
import io
import json
import os
import subprocess
import sys
import urllib.error
import zipfile

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import convnets  # noqa: E402
import data  # noqa: E402
import features  # noqa: E402
import files  # noqa: E402
import metrics  # noqa: E402
import torchfile  # noqa: E402

INCEPTION_URL, INCEPTION_SHA256_PREFIX = features.WEIGHTS["inception"]
SSCD_URL = features.WEIGHTS["sscd"][0]


def random_images(n, size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), np.uint8)


def randomize_(model, seed=0):
    """He-normal convs and random BatchNorm affine maps and running statistics, so that eval-mode
    BatchNorm really transforms the activations."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, generator=generator)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5, generator=generator)
            module.running_var.data.uniform_(0.5, 1.5, generator=generator)
            module.bias.data.normal_(0, 0.2, generator=generator)
            module.running_mean.data.normal_(0, 0.2, generator=generator)
    return model.eval()


def to_torch_input(images):
    import torch
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # (N, 3, H, W) in [0, 1]


# --- the ports ----------------------------------------------------------------------------

def test_inception_matches_pytorch_fid_end_to_end(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    pytorch_fid_inception = pytest.importorskip("pytorch_fid.inception")
    # pytorch-fid's FID blocks change only forward(), so torchvision's Inception3 has their weights' names
    source = randomize_(torchvision.models.inception_v3(num_classes=1008, aux_logits=False, init_weights=False))
    state = source.state_dict()
    monkeypatch.setattr(pytorch_fid_inception, "load_state_dict_from_url", lambda *args, **kwargs: state)
    reference = pytorch_fid_inception.InceptionV3([3], resize_input=True, normalize_input=True,
                                                  use_fid_inception=True).eval()
    path = tmp_path / "inception.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)  # the published file predates the zip format
    images = random_images(2, 32)
    with torch.no_grad():
        expected = reference(to_torch_input(images))[0][:, :, 0, 0].numpy()  # (2, 2048)
    got = features.feature_extractor("inception", torch_state=torchfile.read_torch_file(path))(images)
    assert got.shape == (2, 2048) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("prefix", ["backbone.", "module.backbone."])
def test_sscd_matches_torchvision_resnet50_with_gem(tmp_path, prefix):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    functional = torch.nn.functional

    class GeneralizedMeanPool(torch.nn.Module):
        def forward(self, x):  # SSCD's GeM, p=3
            return x.clamp(min=1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)

    net = randomize_(torchvision.models.resnet50(num_classes=512))
    net.avgpool = GeneralizedMeanPool()
    path = tmp_path / "sscd.pt"
    torch.save({prefix + name: value for name, value in net.state_dict().items()}, path)
    images = random_images(2, 32)
    x = functional.interpolate(to_torch_input(images), size=(96, 96), mode="bilinear", align_corners=False)
    imagenet_mean, imagenet_std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (x - imagenet_mean[:, None, None]) / imagenet_std[:, None, None]
    with torch.no_grad():
        expected = functional.normalize(net(x)).numpy()  # (2, 512), unit norm
    got = features.feature_extractor("sscd", torch_state=torchfile.read_torch_file(path), resize_to=96)(images)
    assert got.shape == (2, 512)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape, size", [((32, 32), 299), ((32, 32), 288), ((50, 41), 37), ((7, 9), 7)])
def test_resize_matches_torch_bilinear_without_antialias(shape, size):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).random((2, *shape, 3), np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), size=(size, size),
                                               mode="bilinear", align_corners=False, antialias=False)
    got = np.asarray(convnets.resize_bilinear(x, size))
    np.testing.assert_allclose(got, expected.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=2e-6)


def test_corrupt_files_are_named(tmp_path):
    sscd_path, _ = features.weight_paths("sscd", tmp_path)  # no published hash: the reader sees the file
    with open(sscd_path, "wb") as file:
        file.write(b"<html>Not Found</html>")
    with pytest.raises(ValueError, match="not a torch weight file"):
        features.load_torch_state("sscd", tmp_path, allow_download=False)
    with zipfile.ZipFile(sscd_path, "w") as archive:
        archive.writestr("archive/other.txt", "")
    with pytest.raises(ValueError, match="without data.pkl"):
        features.load_torch_state("sscd", tmp_path, allow_download=False)


def test_hash_mismatch_names_expected_and_found(tmp_path):
    path, cache = features.weight_paths("inception", tmp_path)
    content = b"not the FID network"
    with open(path, "wb") as file:
        file.write(content)
    found = hashlib.sha256(content).hexdigest()[:8]
    with pytest.raises(ValueError) as error:
        features.load_torch_state("inception", tmp_path, allow_download=False)
    message = str(error.value)
    assert found in message and INCEPTION_SHA256_PREFIX in message and INCEPTION_URL in message
    assert "delete" in message and "\n" not in message and not os.path.exists(cache)


def test_missing_weights_name_url_and_path(tmp_path, monkeypatch):
    path, _ = features.weight_paths("sscd", tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        features.load_torch_state("sscd", tmp_path, allow_download=False)
    assert SSCD_URL in str(error.value) and path in str(error.value) and "\n" not in str(error.value)

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(files.urllib.request, "urlopen", no_network)
    with pytest.raises(files.DownloadError, match="cannot download") as error:
        features.load_torch_state("inception", tmp_path)
    path, _ = features.weight_paths("inception", tmp_path)
    assert INCEPTION_URL in str(error.value) and path in str(error.value)
    assert os.listdir(tmp_path) == []  # no partial file left behind


def serve(content):
    """A stand-in for urllib.request.urlopen that returns `content`."""
    def urlopen(url, timeout=None):
        response = io.BytesIO(content)
        response.headers = {"Content-Length": str(len(content))}
        return response
    return urlopen


def test_download_is_checked_converted_and_cached(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"backbone.fc.weight": torch.randn(3, 2).t(), "backbone.fc.bias": torch.randn(2).half()}, buffer)
    monkeypatch.setattr(files.urllib.request, "urlopen", serve(buffer.getvalue()))
    state = features.load_torch_state("sscd", tmp_path)
    path, cache = features.weight_paths("sscd", tmp_path)
    assert os.path.exists(path) and os.path.exists(cache) and sorted(os.listdir(tmp_path)) == sorted(
        [os.path.basename(path), os.path.basename(cache)])
    assert state["backbone.fc.bias"].dtype == np.float32  # half weights become float32
    open(cache, "wb").close()  # a zeroed conversion is made again from the published file
    np.testing.assert_array_equal(features.load_torch_state("sscd", tmp_path)["backbone.fc.weight"],
                                  state["backbone.fc.weight"])
    os.remove(path)  # the cache alone now serves the weights
    cached = features.load_torch_state("sscd", tmp_path, allow_download=False)
    assert sorted(cached) == sorted(state)
    np.testing.assert_array_equal(cached["backbone.fc.weight"], state["backbone.fc.weight"])
    # a download whose hash does not match the published prefix never lands at the final path
    monkeypatch.setattr(files.urllib.request, "urlopen", serve(b"tampered"))
    with pytest.raises(ValueError, match=f"expected {INCEPTION_SHA256_PREFIX}"):
        features.load_torch_state("inception", tmp_path)
    assert not os.path.exists(features.weight_paths("inception", tmp_path)[0])


def test_available_spaces_follow_the_files(tmp_path):
    assert features.available_spaces(tmp_path) == ["pixels", "randconv"]
    open(features.weight_paths("sscd", tmp_path)[1], "wb").close()
    assert features.available_spaces(tmp_path) == ["pixels", "randconv", "sscd"]


def test_wrong_keys_are_listed():
    state = convnets.random_torch_state("sscd")
    del state["layer2.1.bn2.running_var"]
    with pytest.raises(ValueError, match=r"1 of \d+ expected weights missing") as error:
        convnets.params_from_torch_state("sscd", state)
    assert "['layer2.1.bn2.running_var']" in str(error.value)
    with pytest.raises(ValueError, match="expected one '<prefix>conv1.weight'"):
        convnets.params_from_torch_state("sscd", convnets.random_torch_state("inception"))
    state = convnets.random_torch_state("sscd")
    del state["fc.weight"]
    with pytest.raises(ValueError, match=r"expected one \(512, 2048\) projection"):
        convnets.params_from_torch_state("sscd", state)


# --- pixels, input convention, devices ----------------------------------------------------

def test_pixel_features_are_the_flattened_image_in_unit_range():
    images = np.array([[[[0, 51, 255], [102, 204, 153]]]], np.uint8)  # (1, 1, 2, 3)
    got = features.extract_features("pixels", images)
    np.testing.assert_array_equal(got, np.array([[0, 0.2, 1, 0.4, 0.8, 0.6]], np.float32))


def numpy_randconv(params, images):
    """randconv written out in float64 numpy: zero padding and sums over the 9 kernel taps."""
    x, statistics = images.astype(np.float64) / 127.5 - 1, []
    for i, layer in enumerate(params["layers"]):
        if i > 0:
            n, h, w, c = x.shape
            x = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        h, w = x.shape[1:3]
        out = sum(padded[:, dy:dy + h, dx:dx + w] @ layer["kernel"][dy, dx] for dy in range(3) for dx in range(3))
        x = np.maximum(out + layer["bias"], 0)
        statistics += [x.mean(axis=(1, 2)), x.std(axis=(1, 2))]
    return np.concatenate(statistics, axis=-1)


def test_randconv_matches_a_numpy_convnet():
    params = features.randconv_params(widths=(4, 6, 5), seed=3)
    assert params["layers"][1]["kernel"].shape == (3, 3, 4, 6)
    np.testing.assert_allclose(np.std(features.randconv_params()["layers"][2]["kernel"]),
                               np.sqrt(2 / (9 * 128)), rtol=0.01)  # He-normal
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), np.uint8)
    got = features.randconv_features(params, images)
    np.testing.assert_allclose(got, numpy_randconv(params, images), rtol=1e-5, atol=1e-6)
    full = features.extract_features("randconv", images)
    assert full.shape == (3, 2 * (64 + 128 + 256)) and full.dtype == np.float32
    np.testing.assert_allclose(full, numpy_randconv(features.randconv_params(), images), rtol=1e-4, atol=1e-5)


def test_randconv_tells_noise_from_images_where_pixel_moments_cannot():
    """Colour noise drawn from a Gaussian with the pixel mean and covariance of real images
    matches them in every pixel-space moment FID uses: pixel FID and SW2 rate it within 1.6x
    of real images; randconv, which sees edges, rates it > 2.5x worse."""
    leaves = data.load_leaves(1024, 512, seed=0, size=16)
    real, reference = leaves.train_images[:512], leaves.test_images
    pool = leaves.train_images[512:].reshape(512, -1).astype(np.float64)
    noise = np.random.default_rng(0).multivariate_normal(pool.mean(0), np.cov(pool, rowvar=False), 512)
    noise = np.clip(np.rint(noise), 0, 255).astype(np.uint8).reshape(real.shape)
    for space, low, high in (("pixels", 1.0, 1.6), ("randconv", 2.5, np.inf)):
        extract = features.feature_extractor(space)
        ref, fake, true = extract(reference), extract(noise), extract(real)
        for distance in (metrics.fid, metrics.sliced_wasserstein):
            ratio = distance(fake, ref) / distance(true, ref)
            assert low < ratio < high, (space, distance.__name__, ratio)


def test_to_uint8_and_input_convention():
    np.testing.assert_array_equal(data.to_uint8(np.array([-1.5, -1, 0, 0.999, 1, 2])),
                                  [0, 0, 128, 255, 255, 255])
    with pytest.raises(TypeError, match="uint8"):
        features.extract_features("pixels", np.zeros((1, 4, 4, 3), np.float32))


MULTI_DEVICE_SCRIPT = """
import json, sys
import jax, numpy as np
sys.path.insert(0, {root!r})
import convnets, features, parallel
images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), np.uint8)
state = convnets.random_torch_state("sscd", seed=3)
result = {{"devices": len(jax.local_devices()),
          "sscd": features.extract_features("sscd", images, torch_state=state, resize_to=32,
                                            map_batches=parallel.over_devices(4)).tolist(),
          "torch_imported": "torch" in sys.modules}}
print(json.dumps(result))
"""


def test_two_devices_give_the_single_device_features():
    root = os.path.join(os.path.dirname(__file__), "..")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    # 5 images through parallel.run_batched, 2 per device: batches of 4, the last one padded
    run = subprocess.run([sys.executable, "-c", MULTI_DEVICE_SCRIPT.format(root=root)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    two_devices = json.loads(run.stdout.strip().splitlines()[-1])
    assert two_devices["devices"] == 2 and not two_devices["torch_imported"]
    images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), np.uint8)
    state = convnets.random_torch_state("sscd", seed=3)
    # here: features.py's own single-device loop, one batch of 5 images
    one_device = features.extract_features("sscd", images, torch_state=state, resize_to=32)
    np.testing.assert_allclose(np.array(two_devices["sscd"], np.float32), one_device, rtol=1e-5, atol=1e-6)
