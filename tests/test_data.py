"""Datasets: CIFAR-10's binary format on a small archive made here in the same format, the
built-in procedural data, image folders, and the one-line errors."""
import hashlib
import io
import tarfile
import threading
import time

import numpy as np
import pytest
from PIL import Image

import data
import files


def make_cifar_archive(path, per_file=7, seed=0):
    """A cifar-10-binary.tar.gz of the official layout with random records; returns the
    (images NHWC, labels) it holds for the train and the test split."""
    rng = np.random.default_rng(seed)
    expected = {"train": ([], []), "test": ([], [])}
    with tarfile.open(path, "w:gz") as tar:
        for name in data.CIFAR_TRAIN_FILES + [data.CIFAR_TEST_FILE]:
            labels = rng.integers(0, 10, per_file, dtype=np.uint8)
            planes = rng.integers(0, 256, (per_file, 3, 32, 32), dtype=np.uint8)  # R, G, B planes
            raw = b"".join(bytes([label]) + image.tobytes() for label, image in zip(labels, planes))
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
            split = "test" if name == data.CIFAR_TEST_FILE else "train"
            expected[split][0].append(planes.transpose(0, 2, 3, 1))
            expected[split][1].append(labels)
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in expected.items()}


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    expected = make_cifar_archive(archive)
    monkeypatch.setattr(data, "CIFAR_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    return tmp_path, expected


def test_cifar_binary_records_parse_to_the_first_n_images(cifar_dir):
    root, expected = cifar_dir
    ds = data.load("cifar10", num_train=10, num_test=5, data_dir=root)  # spans two batch files
    np.testing.assert_array_equal(ds.train_images, expected["train"][0][:10])
    np.testing.assert_array_equal(ds.train_labels, expected["train"][1][:10])
    np.testing.assert_array_equal(ds.test_images, expected["test"][0][:5])
    np.testing.assert_array_equal(ds.test_labels, expected["test"][1][:5])
    assert ds.train_images.dtype == np.uint8 and ds.train_images.shape == (10, 32, 32, 3)


def test_cifar_download_checks_the_md5_and_is_atomic(tmp_path, monkeypatch):
    source = tmp_path / "server" / "cifar-10-binary.tar.gz"
    source.parent.mkdir()
    make_cifar_archive(source)
    monkeypatch.setattr(data, "CIFAR_URL", source.as_uri())  # urllib reads file:// URLs
    monkeypatch.setattr(data, "CIFAR_MD5", hashlib.md5(source.read_bytes()).hexdigest())
    ds = data.load("cifar10", num_train=3, num_test=3, data_dir=tmp_path / "cache")
    assert ds.train_images.shape == (3, 32, 32, 3)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["cifar-10-binary.tar.gz"]


def test_cifar_wrong_checksum_is_a_clear_error(cifar_dir, monkeypatch):
    root, _ = cifar_dir
    monkeypatch.setattr(data, "CIFAR_MD5", "0" * 32)
    with pytest.raises(data.DataError, match="MD5 .* expected 0{32}.*delete it"):
        data.load("cifar10", num_train=3, num_test=3, data_dir=root)


def test_cifar_corrupt_archive_is_a_clear_error(tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10-binary.tar.gz"
    archive.write_bytes(b"\x1f\x8b this is not a gzip stream" * 100)
    monkeypatch.setattr(data, "CIFAR_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    with pytest.raises(data.DataError, match="not a readable CIFAR-10 binary archive"):
        data.load("cifar10", num_train=3, num_test=3, data_dir=tmp_path)


def test_no_network_names_the_url_and_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CIFAR_URL", "http://127.0.0.1:9/cifar-10-binary.tar.gz")  # refused
    with pytest.raises(files.DownloadError, match=r"cannot download http://127.0.0.1:9/.*put it at .*cifar-10-binary"):
        data.load("cifar10", num_train=3, num_test=3, data_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_too_many_images_asked_is_a_clear_error(cifar_dir):
    root, _ = cifar_dir
    with pytest.raises(data.DataError, match="50000 training .*training images up to 60000"):
        data.load("cifar10", num_train=60000, num_test=5, data_dir=root)


@pytest.mark.parametrize("split_fn", [data.shapes_split, data.leaves_split])
def test_procedural_data_are_deterministic_prefix_stable_and_disjoint(split_fn):
    a_images, a_labels = split_fn(0, "train", 40, size=16)
    b_images, b_labels = split_fn(0, "train", 25, size=16)
    np.testing.assert_array_equal(a_images[:25], b_images)  # the first N of a larger N
    np.testing.assert_array_equal(a_labels[:25], b_labels)
    test_images, _ = split_fn(0, "test", 40, size=16)
    other_seed, _ = split_fn(1, "train", 40, size=16)
    flat = lambda x: {img.tobytes() for img in x}
    assert len(flat(a_images)) == 40  # no duplicates
    assert not flat(a_images) & flat(test_images) and not flat(a_images) & flat(other_seed)
    assert set(a_labels) <= set(range(10)) and len(set(a_labels)) >= 8


def test_shapes_render_their_shape():
    """Every class draws a foreground that covers some but not all of the image."""
    images, labels = data.shapes_split(0, "train", 200)
    for label in range(10):
        for image in images[labels == label][:5]:
            colours = np.unique(image.reshape(-1, 3), axis=0)
            assert len(colours) > 2  # background shading, foreground, anti-aliased edges


def test_leaves_front_to_back_equals_painting_back_to_front():
    """The renderer draws the front disk first and skips covered pixels; the definition of the
    dead-leaves image is the other way round: paint every disk, back one first, each over the
    last. Both must give the same image, and every pixel must be covered."""
    size = 8
    x, y = data.supersampled_grid(size)
    for label in (0, 7):
        disks, colours = data.draw_leaves(label, np.random.default_rng(label))
        painted = np.full(x.shape + (3,), np.nan)
        for (cx, cy, radius), colour in zip(disks[::-1], colours[::-1]):
            painted[(x - cx) ** 2 + (y - cy) ** 2 < radius ** 2] = colour
        assert not np.isnan(painted).any()
        np.testing.assert_array_equal(data.render_leaves(disks, colours, size), data.to_pixels(painted, size))


def test_leaves_classes_have_their_palette():
    """Class k's pixels have hues around k/10: the circular mean hue of each class is nearest
    its own k/10 of the ten."""
    import colorsys

    images, labels = data.leaves_split(0, "train", 60, size=8)
    for label in range(10):
        pixels = images[labels == label].reshape(-1, 3) / 255.0
        hues = np.array([colorsys.rgb_to_hsv(*p)[0] for p in pixels])
        mean_hue = np.angle(np.exp(2j * np.pi * hues).mean()) / (2 * np.pi) % 1.0
        distance = np.abs((mean_hue - np.arange(10) / 10 + 0.5) % 1.0 - 0.5)  # on the hue circle
        assert np.argmin(distance) == label, (label, mean_hue)


def write_folder(root, counts, size=(20, 12)):
    rng = np.random.default_rng(0)
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i:03d}.png")


def test_image_folder_loads_classes_as_sorted_subfolders(tmp_path):
    write_folder(tmp_path, {"cat": 6, "apple": 4})
    ds = data.load(str(tmp_path), num_train=7, num_test=3, data_dir=tmp_path / "unused", image_size=8)
    assert ds.train_images.shape == (7, 8, 8, 3) and ds.test_images.shape == (3, 8, 8, 3)
    labels = np.concatenate([ds.train_labels, ds.test_labels])
    assert np.bincount(labels).tolist() == [4, 6]  # apple = 0, cat = 1; every image once
    again = data.load(str(tmp_path), num_train=7, num_test=3, data_dir=tmp_path, image_size=8)
    np.testing.assert_array_equal(ds.train_images, again.train_images)


def test_image_folder_errors(tmp_path):
    with pytest.raises(data.DataError, match="neither 'cifar10', 'shapes', 'leaves' nor a folder"):
        data.load(str(tmp_path / "missing"), num_train=1, num_test=1, data_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="no class subfolders"):
        data.load(str(tmp_path / "empty"), num_train=1, num_test=1, data_dir=tmp_path)
    write_folder(tmp_path / "few", {"a": 2, "b": 2})
    with pytest.raises(data.DataError, match="has 4 images.*lower them or add images"):
        data.load(str(tmp_path / "few"), num_train=4, num_test=1, data_dir=tmp_path)
    (tmp_path / "few" / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(data.DataError, match="cannot read image .*broken.png"):
        data.load(str(tmp_path / "few"), num_train=3, num_test=2, data_dir=tmp_path)


def test_grid_and_range_conversions(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(data.to_uint8(data.to_model_range(images)), images)
    data.save_grid(images, tmp_path / "grid.png", columns=3)
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (8, 12, 3)
    np.testing.assert_array_equal(grid[4:8, 0:4], images[3])
    np.testing.assert_array_equal(grid[4:8, 8:12], 0)  # padding after the last image


# --- shared file systems: two jobs at once -------------------------------------------------------

def slow_server(content, chunk=1000, delay=0.002):
    """urlopen stand-in serving `content` slowly, so that two downloads overlap in time."""
    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(content))}

        def read(self, size=-1):
            time.sleep(delay)
            return super().read(min(chunk, size) if size > 0 else chunk)

    return lambda url, timeout=None: Response(content)


def test_two_jobs_downloading_the_same_file_at_once_both_succeed(tmp_path, monkeypatch):
    source = tmp_path / "cifar-10-binary.tar.gz"
    make_cifar_archive(source)
    content = source.read_bytes()
    monkeypatch.setattr(files.urllib.request, "urlopen", slow_server(content))
    monkeypatch.setattr(data, "CIFAR_MD5", hashlib.md5(content).hexdigest())
    dest, errors = tmp_path / "cache", []

    def job():
        try:
            data.load("cifar10", num_train=3, num_test=3, data_dir=dest)
        except Exception as error:  # noqa: BLE001 - collected for the assertion below
            errors.append(error)

    jobs = [threading.Thread(target=job) for _ in range(2)]
    for thread in jobs:
        thread.start()
    for thread in jobs:
        thread.join()
    assert errors == []
    assert hashlib.md5((dest / "cifar-10-binary.tar.gz").read_bytes()).hexdigest() == data.CIFAR_MD5
    assert [p.name for p in dest.iterdir()] == ["cifar-10-binary.tar.gz"]  # no temporary left


# --- image folders: hidden folders, class counts, the user's own split -------------------------

def test_image_folder_ignores_hidden_folders_and_refuses_more_classes_than_the_model(tmp_path):
    write_folder(tmp_path / "data", {"a": 3, "b": 3, ".ipynb_checkpoints": 2})
    ds = data.load(str(tmp_path / "data"), num_train=4, num_test=2, data_dir=tmp_path, image_size=8)
    assert sorted(set(np.concatenate([ds.train_labels, ds.test_labels]).tolist())) == [0, 1]
    write_folder(tmp_path / "many", {f"class{i:02d}": 2 for i in range(12)})
    with pytest.raises(data.DataError, match="has 12 classes .* run with --num_classes 12"):
        data.load(str(tmp_path / "many"), num_train=4, num_test=2, data_dir=tmp_path, image_size=8)
    ds = data.load(str(tmp_path / "many"), num_train=20, num_test=4, data_dir=tmp_path, image_size=8,
                   num_classes=12)
    assert ds.train_labels.max() <= 11 and len(set(ds.train_labels.tolist())) >= 10


def test_image_folder_with_train_and_test_subfolders_keeps_the_users_split(tmp_path):
    write_folder(tmp_path / "data" / "train", {"cat": 5, "dog": 4})
    write_folder(tmp_path / "data" / "test", {"cat": 2, "dog": 3})
    ds = data.load(str(tmp_path / "data"), num_train=9, num_test=5, data_dir=tmp_path, image_size=8)
    assert np.bincount(ds.train_labels).tolist() == [5, 4] and np.bincount(ds.test_labels).tolist() == [2, 3]
    first = data.load(str(tmp_path / "data"), num_train=3, num_test=2, data_dir=tmp_path, image_size=8)
    np.testing.assert_array_equal(first.train_images, ds.train_images[:3])  # the first N of a fixed order
    with pytest.raises(data.DataError, match="5 test images; .*num_test=6"):
        data.load(str(tmp_path / "data"), num_train=3, num_test=6, data_dir=tmp_path, image_size=8)
    write_folder(tmp_path / "data" / "test", {"bird": 1})
    with pytest.raises(data.DataError, match=r"test has classes that .*train lacks: \['bird'\]"):
        data.load(str(tmp_path / "data"), num_train=3, num_test=2, data_dir=tmp_path, image_size=8)


def test_cifar_at_16x16_averages_2x2_blocks(cifar_dir):
    root, expected = cifar_dir
    ds = data.load("cifar10", num_train=4, num_test=2, data_dir=root, image_size=16)
    blocks = expected["train"][0][:4].reshape(4, 16, 2, 16, 2, 3).astype(float).mean(axis=(2, 4))
    np.testing.assert_array_equal(ds.train_images, np.round(blocks).astype(np.uint8))
    assert ds.test_images.shape == (2, 16, 16, 3)
    with pytest.raises(data.DataError, match="image_size=12"):
        data.load("cifar10", num_train=4, num_test=2, data_dir=root, image_size=12)


# --- twin training sets and images of other bit depths ---------------------------------------

def test_an_offset_training_split_is_the_next_n_images_and_the_test_split_stays(cifar_dir, tmp_path):
    root, expected = cifar_dir
    twin = data.load("cifar10", num_train=6, num_test=5, data_dir=root, offset=6)  # spans two batch files
    np.testing.assert_array_equal(twin.train_images, expected["train"][0][6:12])
    np.testing.assert_array_equal(twin.train_labels, expected["train"][1][6:12])
    np.testing.assert_array_equal(twin.test_images, expected["test"][0][:5])
    with pytest.raises(data.DataError, match="training images up to 50005 .*data_offset"):
        data.load("cifar10", num_train=6, num_test=5, data_dir=root, offset=49_999)
    with pytest.raises(data.DataError, match="holds fewer training images than data_offset=30 plus num_train=6"):
        data.load("cifar10", num_train=6, num_test=5, data_dir=root, offset=30)  # this archive has 35
    write_folder(tmp_path / "pool", {"a": 6, "b": 6})
    sources = [("leaves", {}), ("shapes", {}), (str(tmp_path / "pool"), {"image_size": 8})]
    for name, options in sources:
        both = data.load(name, num_train=8, num_test=4, data_dir=tmp_path, **options)
        first = data.load(name, num_train=4, num_test=4, data_dir=tmp_path, **options)
        second = data.load(name, num_train=4, num_test=4, data_dir=tmp_path, offset=4, **options)
        np.testing.assert_array_equal(second.train_images, both.train_images[4:])
        np.testing.assert_array_equal(second.train_labels, both.train_labels[4:])
        np.testing.assert_array_equal(second.test_images, first.test_images)
        assert not (first.train_images[:, None] == second.train_images[None]).all(axis=(2, 3, 4)).any()


def test_16_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 1, 64).reshape(8, 8)
    Image.fromarray(np.round(ramp * 65535).astype(np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(ramp.astype(np.float32), "F").save(tmp_path / "float.tif")
    expected = np.repeat(np.round(ramp * 255).astype(np.uint8)[..., None], 3, axis=2)
    for name in ("deep.png", "float.tif"):
        np.testing.assert_array_equal(data.load_image(tmp_path / name, 8), expected, err_msg=name)
    Image.fromarray((ramp * 1000 - 5).astype(np.float32), "F").save(tmp_path / "wide.tif")
    with pytest.raises(data.DataError, match="wide.tif: float pixel values outside"):
        data.load_image(tmp_path / "wide.tif", 8)
