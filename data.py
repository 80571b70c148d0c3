"""Datasets: CIFAR-10, two built-in procedural datasets ("leaves", "shapes"), and an image folder.

Every loader returns a Dataset of uint8 images (n, H, W, 3), NHWC, with int32 labels in
[0, num_classes). The training split is the FIRST N images, so a run with N=4096 sees the images of
the run with N=2048 and 2048 more; the test split is a fixed set (5,120 images by default). With offset k the training split is
images k .. k + N - 1 instead: offset N gives a twin training set, disjoint from the first N.

  cifar10   the official binary archive (cifar-10-binary.tar.gz, fixed-length records:
            1 label byte + 3072 pixel bytes, R, G, B planes of 32x32): downloaded with a
            progress line into `data_dir`, checked against its published MD5, read straight
            from the tar without unpickling anything or extracting files. No network? Put
            the archive in `data_dir` yourself. image_size 16 or 8 averages 2x2 or 4x4 blocks
            (CIFAR-10 on a CPU: --dataset cifar10 --image_size 16).
  shapes    10 classes of anti-aliased 32x32 RGB shapes (disk, square, triangle, ring,
            cross, grating, checkerboard, two disks, ellipse, half-plane) on a shaded
            background, each image a continuous random draw of position, size, angle and
            colours. Image i of a split depends only on (seed, split, i), so it is
            deterministic and train and test are disjoint. The family is continuous, so a
            model can generalize to unseen draws; a few dozen images are isolated points
            that a small U-Net memorizes within minutes on a CPU. For offline runs and tests.
  leaves    dead-leaves images (Lee, Mumford & Huang 2001), the synthetic model of natural
            images' statistics: opaque disks with radii of density ~ r^-3 stacked until they
            cover the image, in 10 classes of palettes (hues around k/10), label i mod 10.
            Every image holds dozens of visible disks, so, like photographs and unlike
            shapes, it is many independent details that a model must memorize one by one
            (the cpu preset's data). Deterministic in (seed, split, i), as shapes.
  <folder>  a directory with one subfolder per class (sorted names = labels 0, 1, ...;
            hidden folders such as .ipynb_checkpoints are ignored), images readable by
            Pillow, center-cropped to a square and resized. Images are put in a fixed
            pseudo-random order (seed 0); the test split is the last `num_test` of that
            order, the training split the first N. A folder holding `train/` and `test/`,
            each with the same class subfolders, is used as given: the first N of train's
            fixed order, the first `num_test` of test's.

    python data.py cifar10 --data-dir ~/.cache/diffmem/data   # download and check CIFAR-10
    python data.py leaves --out leaves.png                    # look at the built-in data
"""
import colorsys
import dataclasses
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np

import files

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR_TRAIN_FILES = [f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_TEST_FILE = "cifar-10-batches-bin/test_batch.bin"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class DataError(ValueError):
    """A problem with data or weight files that the user can fix; the message says how."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    train_images: np.ndarray  # (N, H, W, 3) uint8
    train_labels: np.ndarray  # (N,) int32
    test_images: np.ndarray
    test_labels: np.ndarray


# --- CIFAR-10 ---------------------------------------------------------------------------


def read_cifar_records(archive, member):
    """(images (n, 32, 32, 3) uint8, labels (n,) int32) from one binary batch in the tar."""
    with tarfile.open(archive, "r:gz") as tar:
        raw = tar.extractfile(member).read()
    records = np.frombuffer(raw, np.uint8)
    if records.size % 3073:
        raise DataError(f"{archive}: {member} is not a whole number of 3073-byte records; "
                        f"delete the archive and download it again")
    records = records.reshape(-1, 3073)  # (n, 1 label byte + 3*32*32 pixels)
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # planes -> NHWC
    return np.ascontiguousarray(images), records[:, 0].astype(np.int32)


def load_cifar10(data_dir, num_train, num_test, offset=0):
    data_dir = Path(data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / "cifar-10-binary.tar.gz"
    if not archive.exists():
        files.download(CIFAR_URL, archive)
    found = files.file_hash(archive, "md5")
    if found != CIFAR_MD5:
        raise DataError(f"{archive} has MD5 {found}, expected {CIFAR_MD5} (corrupt or partial "
                        f"download); delete it and run again to download {CIFAR_URL}")
    check_sizes(offset + num_train, 50_000, num_test, 10_000, "CIFAR-10")
    try:
        train = []
        for name in CIFAR_TRAIN_FILES:  # read batch files until images up to offset + N are in
            train.append(read_cifar_records(archive, name))
            if sum(len(labels) for _, labels in train) >= offset + num_train:
                break
        test_images, test_labels = read_cifar_records(archive, CIFAR_TEST_FILE)
    except (tarfile.TarError, KeyError, EOFError, OSError, zlib.error) as err:
        raise DataError(f"{archive} is not a readable CIFAR-10 binary archive ({err}); "
                        f"delete it and run again") from None
    chosen = slice(offset, offset + num_train)
    train_images = np.concatenate([images for images, _ in train])[chosen]
    train_labels = np.concatenate([labels for _, labels in train])[chosen]
    if len(train_labels) < num_train:  # an archive with shorter batch files than the official one
        raise DataError(f"{archive} holds fewer training images than data_offset={offset} plus "
                        f"num_train={num_train}; delete it and run again to download {CIFAR_URL}")
    return Dataset(train_images, train_labels, test_images[:num_test], test_labels[:num_test])


def check_sizes(last_train, have_train, num_test, have_test, name):
    if last_train > have_train or num_test > have_test:
        raise DataError(f"{name} has {have_train} training and {have_test} test images; asked for "
                        f"training images up to {last_train} (num_train plus data_offset) and "
                        f"num_test={num_test}: lower them")


# --- the built-in procedural dataset -------------------------------------------------------

SHAPE_CLASSES = ("disk", "square", "triangle", "ring", "cross",
                 "grating", "checkerboard", "two_disks", "ellipse", "half_plane")
SUPERSAMPLE = 4  # render at 4x and average: anti-aliased edges, so images vary smoothly


def supersampled_grid(size):
    """Pixel-centre coordinates x (across), y (down) in [-1, 1] of the image rendered at
    SUPERSAMPLE x its size: two (n, n) arrays, n = size * SUPERSAMPLE."""
    n = size * SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / n * 2 - 1
    return np.meshgrid(coords, coords)


def to_pixels(image, size):
    """(n, n, 3) floats in [0, 1] at SUPERSAMPLE x size -> (size, size, 3) uint8: the mean of
    each SUPERSAMPLE x SUPERSAMPLE block (anti-aliasing), rounded."""
    image = image.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.round(255 * image).astype(np.uint8)


def rotate(x, y, angle):
    c, s = np.cos(angle), np.sin(angle)
    return c * x + s * y, -s * x + c * y


def shape_mask(label, x, y, p):
    """Coverage in {0, 1} of shape `label` at coordinates x, y in [-1, 1]; p: (10,) params
    in [0, 1) that each shape maps to its own position, size and angle."""
    cx, cy = 1.2 * p[0] - 0.6, 1.2 * p[1] - 0.6
    size = 0.25 + 0.35 * p[2]
    angle = 2 * np.pi * p[3]
    u, v = rotate(x - cx, y - cy, angle)
    if label == 0:
        return np.hypot(u, v) < size
    if label == 1:
        return np.maximum(abs(u), abs(v)) < 0.8 * size
    if label == 2:  # equilateral triangle: inside three half-planes
        return np.all([rotate(u, v, k * 2 * np.pi / 3)[1] < 0.5 * size for k in range(3)], axis=0)
    if label == 3:
        r = np.hypot(u, v)
        return (r < size) & (r > size * (0.35 + 0.35 * p[4]))
    if label == 4:
        arm, width = 1.1 * size, 0.25 * size * (1 + p[4])
        return ((abs(u) < arm) & (abs(v) < width)) | ((abs(v) < arm) & (abs(u) < width))
    if label == 5:
        period = 0.3 + 0.5 * p[4]
        return np.sin(2 * np.pi * (u / period + p[5])) > 0
    if label == 6:
        cell = 0.25 + 0.35 * p[4]
        return (np.floor(u / cell + p[5]) + np.floor(v / cell + p[6])) % 2 == 0
    if label == 7:
        dx, dy = rotate(0.35 + 0.2 * p[4], 0.0, angle)
        r = 0.5 * size
        return (np.hypot(x - cx - dx, y - cy - dy) < r) | (np.hypot(x - cx + dx, y - cy + dy) < r)
    if label == 8:
        return (u / size) ** 2 + (v / (size * (0.3 + 0.4 * p[4]))) ** 2 < 1
    return u < (p[4] - 0.5)  # half-plane through a random offset


def render_shape(label, rng, size):
    p = rng.random(10)
    colors = rng.random((3, 3))  # background, background gradient end, foreground
    while np.abs(colors[2] - colors[0]).sum() < 0.6:  # keep the shape visible
        colors[2] = rng.random(3)
    x, y = supersampled_grid(size)
    g_angle = 2 * np.pi * p[9]
    ramp = (rotate(x, y, g_angle)[0] + 1.5) / 3.0  # background shading in [0, 1]
    background = colors[0] + (colors[1] - colors[0]) * 0.5 * ramp[..., None]
    mask = shape_mask(label, x, y, p)[..., None]
    return to_pixels(np.where(mask, colors[2], background), size)  # from (n, n, 3) in [0, 1]


def shapes_split(seed, split, n, size=32, start=0):
    """Images start .. start + n - 1 of a split ('train' or 'test') of the procedural dataset."""
    split_id = {"train": 0, "test": 1}[split]
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.empty(n, np.int32)
    for i in range(n):
        rng = np.random.default_rng([seed, split_id, start + i])
        labels[i] = rng.integers(len(SHAPE_CLASSES))
        images[i] = render_shape(labels[i], rng, size)
    return images, labels


def load_shapes(num_train, num_test, seed=0, size=32, offset=0):
    train = shapes_split(seed, "train", num_train, size, start=offset)
    test = shapes_split(seed, "test", num_test, size)
    return Dataset(*train, *test)


# --- the built-in dead-leaves dataset --------------------------------------------------------

LEAF_RADII = (0.18, 1.2)  # in units of half the image side: from under 1.5 pixels at 16x16 to wider than the image
MAX_LEAVES = 600


def draw_leaves(label, rng):
    """MAX_LEAVES disks, front first: (centre x, centre y, radius) and their RGB colours in [0, 1].
    Radii have density ~ r^-3 on LEAF_RADII, which gives natural images' scale invariance; the
    class sets the palette: hues spread around label/10."""
    u = rng.random((MAX_LEAVES, 5))
    hues = (label / 10 + 0.06 * rng.standard_normal(MAX_LEAVES)) % 1.0
    r_min, r_max = LEAF_RADII
    radii = (r_min ** -2 - u[:, 0] * (r_min ** -2 - r_max ** -2)) ** -0.5  # inverse CDF of r^-3
    centres = 2.4 * u[:, 1:3] - 1.2  # also beyond the border, so no edge is special
    colours = np.array([colorsys.hsv_to_rgb(h, 0.3 + 0.7 * s, 0.25 + 0.75 * v)
                        for h, s, v in zip(hues, u[:, 3], u[:, 4])])
    return np.column_stack([centres, radii]), colours


def render_leaves(disks, colours, size):
    """A dead-leaves image (Lee, Mumford & Huang 2001): opaque disks stacked on one another.
    Drawn front to back: each disk paints only what the disks in front of it left uncovered,
    and drawing stops once every pixel is covered."""
    x, y = supersampled_grid(size)
    image, covered = np.zeros(x.shape + (3,)), np.zeros(x.shape, bool)
    for (cx, cy, radius), colour in zip(disks, colours):
        leaf = ((x - cx) ** 2 + (y - cy) ** 2 < radius ** 2) & ~covered
        image[leaf] = colour
        covered |= leaf
        if covered.all():
            break
    return to_pixels(image, size)


def leaves_split(seed, split, n, size=32, start=0):
    """Images start .. start + n - 1 of a split of the dead-leaves dataset: image i depends
    only on (seed, split, i), its label is i mod 10 (balanced classes in every prefix)."""
    split_id = {"train": 2, "test": 3}[split]  # streams apart from those of shapes
    images = np.empty((n, size, size, 3), np.uint8)
    labels = np.arange(start, start + n, dtype=np.int32) % 10
    for i in range(n):
        images[i] = render_leaves(*draw_leaves(labels[i], np.random.default_rng([seed, split_id, start + i])), size)
    return images, labels


def load_leaves(num_train, num_test, seed=0, size=32, offset=0):
    return Dataset(*leaves_split(seed, "train", num_train, size, start=offset),
                   *leaves_split(seed, "test", num_test, size))


# --- an image folder ------------------------------------------------------------------------


def as_rgb8(img, path):
    """A Pillow image as 8-bit RGB, scaled from its own range: convert("RGB") alone clips
    16-bit images (nearly all pixels at 255) and truncates float ones (all 0)."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        values = np.asarray(img, np.float64)
        if img.mode == "F":  # float images: [0, 1] or [0, 255]
            top = 1.0 if values.max() <= 1.0 else 255.0
            if values.min() < 0 or values.max() > 255 or not np.isfinite(values).all():
                raise DataError(f"{path}: float pixel values outside [0, 1] and [0, 255] (from {values.min():g} "
                                f"to {values.max():g}); save it as an 8- or 16-bit image")
        else:  # 16-bit images, and 32-bit integer ones holding 16-bit data
            top = 65535.0
            if values.min() < 0 or values.max() > 65535:
                raise DataError(f"{path}: integer pixel values outside 0..65535; save it as an 8- or 16-bit image")
        img = Image.fromarray(np.round(values * (255.0 / top)).astype(np.uint8), "L")
    return img.convert("RGB")


def load_image(path, size):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = as_rgb8(img, path)
            side = min(img.size)
            left, top = (img.width - side) // 2, (img.height - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
            return np.asarray(img, np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"cannot read image {path} ({err}); remove or replace it") from None


def class_folders(root):
    """The class subfolders of root, sorted by name; hidden ones (.ipynb_checkpoints) skipped."""
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class subfolders; put the images of class k in {root}/<name_k>/")
    return classes


def folder_items(root, class_names):
    """[(image path, label)] of the class subfolders of root, labels by position in class_names,
    in a fixed pseudo-random order (seed 0) that does not depend on the file system."""
    items = [(path, label) for label, name in enumerate(class_names) if (root / name).is_dir()
             for path in sorted((root / name).iterdir())
             if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")]
    return [items[i] for i in np.random.default_rng(0).permutation(len(items))]


def load_folder(root, num_train, num_test, size=32, num_classes=10, offset=0):
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset '{root}' is neither 'cifar10', 'shapes', 'leaves' nor a folder")
    split = (root / "train").is_dir() and (root / "test").is_dir()
    class_names = [d.name for d in class_folders(root / "train" if split else root)]
    if len(class_names) > num_classes:
        raise DataError(f"{root} has {len(class_names)} classes ({', '.join(class_names[:4])}, ...) but the "
                        f"model has num_classes={num_classes}: run with --num_classes {len(class_names)}")
    if split:  # the user's own split: train/<class>/..., test/<class>/...
        if extra := sorted({d.name for d in class_folders(root / "test")} - set(class_names)):
            raise DataError(f"{root}/test has classes that {root}/train lacks: {extra}")
        train_items, test_items = folder_items(root / "train", class_names), folder_items(root / "test", class_names)
        if offset + num_train > len(train_items) or num_test > len(test_items):
            raise DataError(f"{root} has {len(train_items)} training and {len(test_items)} test images; asked for "
                            f"num_train={num_train} from data_offset={offset} and num_test={num_test}: lower "
                            f"them or add images")
        chosen = train_items[offset:offset + num_train] + test_items[:num_test]
    else:  # one pool: the first N of the fixed order for training, the last num_test for test
        items = folder_items(root, class_names)
        if offset + num_train + num_test > len(items):
            raise DataError(f"{root} has {len(items)} images; data_offset={offset} plus num_train={num_train} "
                            f"plus num_test={num_test} needs more: lower them or add images")
        chosen = items[offset:offset + num_train] + items[len(items) - num_test:]
    images = np.stack([load_image(path, size) for path, _ in chosen])
    labels = np.array([label for _, label in chosen], np.int32)
    return Dataset(images[:num_train], labels[:num_train], images[num_train:], labels[num_train:])


def load(dataset, *, num_train, num_test, data_dir, image_size=32, seed=0, num_classes=10, offset=0):
    """The dataset named by `dataset` ('cifar10', 'leaves', 'shapes' or a folder path), its
    training split images offset .. offset + num_train - 1. seed draws the procedural images;
    CIFAR-10 and folders are fixed."""
    if dataset == "cifar10":
        if image_size not in (8, 16, 32):
            raise DataError(f"CIFAR-10 images are 32x32 (8 and 16 by averaging blocks); got image_size={image_size}")
        ds = load_cifar10(data_dir, num_train, num_test, offset)
        shrink = lambda x: average_pool(x, 32 // image_size)
        return Dataset(shrink(ds.train_images), ds.train_labels, shrink(ds.test_images), ds.test_labels)
    if dataset == "shapes":
        return load_shapes(num_train, num_test, seed, image_size, offset)
    if dataset == "leaves":
        return load_leaves(num_train, num_test, seed, image_size, offset)
    return load_folder(dataset, num_train, num_test, image_size, num_classes, offset)


def average_pool(images, factor):
    """uint8 (n, H, W, C) -> (n, H/factor, W/factor, C): the mean of each factor x factor block."""
    if factor == 1:
        return images
    n, h, w, c = images.shape
    blocks = images.reshape(n, h // factor, factor, w // factor, factor, c).astype(np.float32)
    return np.round(blocks.mean(axis=(2, 4))).astype(np.uint8)


def save_grid(images, path, columns=None):
    """Write uint8 images (n, H, W, 3) as one PNG, row-major in a grid of `columns`."""
    from PIL import Image

    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = -(-n // columns)
    padded = np.zeros((rows * columns, h, w, c), np.uint8)
    padded[:n] = images
    grid = padded.reshape(rows, columns, h, w, c).swapaxes(1, 2).reshape(rows * h, columns * w, c)
    with files.atomic_write(path) as file:
        Image.fromarray(grid).save(file, format="PNG")


def to_model_range(images):
    """uint8 [0, 255] -> float32 [-1, 1], the range the model sees."""
    return images.astype(np.float32) / 127.5 - 1.0


def to_uint8(x):
    """float [-1, 1] -> uint8 [0, 255], clipping what the sampler overshoots."""
    return np.clip(np.round((np.asarray(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", help="cifar10, leaves, shapes or a folder")
    parser.add_argument("--data-dir", default="~/.cache/diffmem/data")
    parser.add_argument("--out", default=None, help="write a grid of the first 100 training images")
    args = parser.parse_args()
    try:
        ds = load(args.dataset, num_train=100, num_test=100, data_dir=args.data_dir)
    except DataError as err:
        sys.exit(f"error: {err}")
    print(f"{args.dataset}: train {ds.train_images.shape}, test {ds.test_images.shape}, "
          f"train label counts {np.bincount(ds.train_labels, minlength=10).tolist()}")
    if args.out:
        save_grid(ds.train_images, args.out, columns=10)
        print(f"wrote {args.out}")
