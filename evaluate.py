"""Evaluation of a run at one step: the numbers of one row of its log.npz.

    evaluate = make_evaluator(cfg, velocity, dataset, run_dir, key, sample_velocity)
    row = evaluate(state, step, samples=True)   # state: {"params", "ema"}, replicated

A row holds
- the denoising loss on a fixed set of training images and on the test set, with its
  standard error and its means in 10 noise-level bins. Noise and times are drawn once (from
  `key`), so rows differ only by the network. Losses use the raw parameters, as the loss
  the optimizer sees;
- the same losses of two exact references on the same images, noise and times (ideal.py):
  the memorizer (the training set's own velocity field: the lowest train loss there is) and
  the Gaussian fit of the training set. They are constants of the run, repeated in every row
  so that every array of the log is indexed by evaluation. From them, the normalized gap
  (test - train) / (memorizer test - memorizer train): the fraction of the possible
  overfitting, per noise bin and over the noisier half of the bins (noisy_half_gap). Also
  constant: the fidelity (SW and FID, every feature space) of the two references' own samples
  from the sample noise and labels, memorizer_swd_<space>_<split> and gaussian_...: what a
  network that copies the training set scores, and one that knows only its mean and covariance;
- what the network has learnt, per noise bin: the relative distance of its velocity to each
  exact reference's (memorizer, Gaussian fit, k x k patch memorizer) on held-out inputs,
  distance_<ref>_bins, and as constants the references' distances to each other; what this
  costs in wall time, distance_seconds, and the one-off distance_references_seconds;
- with samples=True (train.py asks at cfg.num_sample_evals of the evaluations), 'sample_step'
  and the sample metrics: samples from the EMA parameters, from noise and labels fixed once,
  then the pixel-space copy fraction, how close each sample is to the training image the
  memorizer makes from the same noise and label, and in every feature space of
  cfg.feature_spaces the sliced Wasserstein distance and FID against the train and test
  splits, and with SSCD the paper's memorization score. A sample grid PNG and the first
  samples beside their nearest training images (.npz, for plot.py) go to run_dir/samples/.

The references are computed once per run (and kept in run_dir/references.npz); features of
the two reference splits are computed once and cached on disk under a key of everything
they depend on (features.fingerprint and the images' bytes).
"""
import functools
import hashlib
import math
import time
from pathlib import Path

import jax
import numpy as np

import data
import files
import features
import flow
import ideal
import metrics
import parallel


def reference_features(extract, fingerprint, images, cache_dir):
    """extract(images), cached under cache_dir by the extractor's fingerprint and the images."""
    digest = hashlib.sha256(fingerprint.encode() + str(images.shape).encode() + images.tobytes()).hexdigest()
    path = Path(cache_dir).expanduser() / f"{fingerprint}-{len(images)}-{digest[:16]}.npy"
    if path.exists():  # also when another job of the array wrote it
        try:
            return np.load(path)
        except (OSError, EOFError, ValueError):
            pass  # damaged (a zero-byte file from a full disk): computed and written again
    feats = extract(images)
    with files.atomic_write(path) as file:
        np.save(file, feats)
    return feats


def make_fidelity(cfg, dataset):
    """fidelity(images uint8 (n, H, W, 3)) -> (entries, features): entries swd_<space>_<split>
    and fid_<space>_<split> of the images against the train and test splits in every space of
    cfg.feature_spaces; features[space] the images' features. Returns (fidelity, the training
    set's features by space).

    FID: the paper compares as many generated samples as the reference split holds. We
    generate num_samples; where the split holds more (N = 8192 or 16384 at the paper's 5,120
    samples), all num_samples are compared against the whole split. FID's bias depends on
    both counts, logged as fid_count_generated and fid_count_<split>."""
    cache_dir = Path(cfg.data_dir).expanduser().parent / "features"
    extractors, refs = {}, {}
    for space in cfg.feature_spaces:
        extractors[space] = features.feature_extractor(space, cfg.weights_dir, allow_download=False,
                                                       map_batches=parallel.over_devices(cfg.eval_batch))
        fingerprint = features.fingerprint(space, cfg.weights_dir)
        for split, images in [("train", dataset.train_images), ("test", dataset.test_images)]:
            refs[space, split] = (extractors[space](images) if space == "pixels" else
                                  reference_features(extractors[space], fingerprint, images, cache_dir))

    def fidelity(images):
        entries, feats = {}, {}
        for space in cfg.feature_spaces:
            feats[space] = extractors[space](images)
            for split in ("train", "test"):
                ref = refs[space, split]
                entries[f"swd_{space}_{split}"] = metrics.sliced_wasserstein(feats[space][:cfg.swd_samples], ref)
                entries[f"fid_{space}_{split}"] = metrics.fid(feats[space][:len(ref)], ref)
        return entries, feats

    return fidelity, {space: refs[space, "train"] for space in cfg.feature_spaces}


def make_sample_metrics(cfg, dataset, fidelity, train_features):
    """sample_metrics(samples uint8 (n, H, W, 3), memorizer_index (n,), npz_path) -> log
    entries: mem_ratio_pixels, mem_memorizer_match and mem_memorizer_distance; the fidelity
    entries (make_fidelity); mem_sscd with SSCD. Writes the first grid_samples samples with
    their nearest training images to npz_path, for plot.py."""

    def sample_metrics(samples, memorizer_index, npz_path):
        row, shown = {}, slice(0, cfg.grid_samples)
        ratio, nearest = metrics.nearest_neighbour_ratio(samples, dataset.train_images)
        row["mem_ratio_pixels"] = metrics.copy_fraction(ratio)
        # the training image the memorizer makes from the same noise and label: is it the
        # sample's nearest, and how far is the sample from it (RMS, pixels in [0, 1])
        row["mem_memorizer_match"] = float(np.mean(nearest[:, 0] == memorizer_index))
        difference = samples.astype(np.float64) - dataset.train_images[memorizer_index]
        row["mem_memorizer_distance"] = float(np.sqrt(np.mean(difference ** 2)) / 255)
        extra = {"samples": samples[shown], "nearest_pixels": dataset.train_images[nearest[shown, 0]],
                 "ratio_pixels": ratio[shown]}
        for split, images in [("train", dataset.train_images), ("test", dataset.test_images)]:
            row[f"fid_count_{split}"] = len(images)
        row["fid_count_generated"] = len(samples)
        entries, feats = fidelity(samples)
        row.update(entries)
        if "sscd" in feats:
            cosine, index = metrics.nearest_by_cosine(feats["sscd"], train_features["sscd"])
            row["mem_sscd"] = metrics.memorization_score(cosine[:, 0])
            extra.update(nearest_sscd=dataset.train_images[index[shown, 0]], cosine_sscd=cosine[shown, 0])
        if jax.process_index() == 0:
            with files.atomic_write(npz_path) as file:
                np.savez(file, **extra)
        return row

    return sample_metrics


def mean_and_sem(losses, image_ids):
    """Mean loss and its standard error over IMAGES: the losses of an image evaluated several
    times (N smaller than the evaluation batch) are averaged first, so the error also counts
    which images happen to be in the set, not only the noise draws."""
    counts = np.bincount(image_ids)
    per_image = np.bincount(image_ids, weights=losses)[counts > 0] / counts[counts > 0]
    sem = per_image.std(ddof=1) / math.sqrt(len(per_image)) if len(per_image) > 1 else float("nan")
    return losses.mean(), sem


def make_sampler(cfg, velocity):
    """sample(params, noise, labels) -> uint8 images: cfg's Euler sampler with this velocity
    function, batched over all devices."""
    sample_fn = parallel.data_parallel(lambda p, noise, y: flow.sample(
        velocity, p, noise, y, steps=cfg.sample_steps, null_label=cfg.num_classes, guidance=cfg.guidance))
    return lambda params, noise, labels: data.to_uint8(
        parallel.run_batched(sample_fn, params, noise, labels, batch=cfg.eval_batch))


def exact_references(cfg, dataset):
    """{name: (velocity, params replicated over the devices)} of ideal.py's two global
    references of the training set: the memorizer and the Gaussian fit."""
    train = data.to_model_range(dataset.train_images)
    return {"memorizer": (ideal.memorizer_velocity, parallel.replicate(
                ideal.memorizer_params(train, dataset.train_labels, cfg.num_classes))),
            "gaussian": (ideal.gaussian_velocity, parallel.replicate(ideal.gaussian_params(train)))}


def compute_references(cfg, dataset, references, loss_sets, sample_noise, sample_labels):
    """The run's constants from the exact references (exact_references): per split and
    reference, the loss on the evaluation set (mean and per noise bin); from each sample's
    noise and label, the training image the memorizer samples (its index) and the Gaussian's
    sample (uint8)."""
    batch = cfg.eval_batch
    refs = {}
    (memorizer_velocity, memorizer), (gaussian_velocity, gaussian) = references["memorizer"], references["gaussian"]
    for name, (velocity, params) in references.items():
        loss_fn = parallel.data_parallel(lambda p, x, y, noise, t, v=velocity: flow.per_sample_loss(v, p, x, y, noise, t))
        for split, (images, labels, noise, t) in loss_sets.items():
            losses = parallel.run_batched(loss_fn, params, images, labels, noise, t, batch=batch)
            refs[f"{name}_{split}_loss"] = losses.mean()
            refs[f"{name}_{split}_loss_bins"] = np.asarray(flow.bin_means(t, losses))
    memorizer_samples = make_sampler(cfg, memorizer_velocity)(memorizer, sample_noise, sample_labels)
    refs["memorizer_index"] = metrics.nearest_by_distance(memorizer_samples, dataset.train_images, k=1)[1][:, 0]
    refs["gaussian_samples"] = make_sampler(cfg, gaussian_velocity)(gaussian, sample_noise, sample_labels)
    return refs


def load_or_compute_references(cfg, dataset, references, loss_sets, sample_noise, sample_labels, run_dir):
    path = Path(run_dir) / "references.npz"
    if path.exists():  # a resumed run; one saved before the Gaussian's samples were kept gets them
        with np.load(path) as f:
            if "gaussian_samples" in f:
                return dict(f)
    start = time.time()
    refs = compute_references(cfg, dataset, references(), loss_sets, sample_noise, sample_labels)
    print(f"references (memorizer and Gaussian losses and samples): {time.time() - start:.1f} s; "
          f"memorizer loss train {refs['memorizer_train_loss']:.4g} test {refs['memorizer_test_loss']:.4g}, "
          f"Gaussian train {refs['gaussian_train_loss']:.4g} test {refs['gaussian_test_loss']:.4g}", flush=True)
    if jax.process_index() == 0:
        with files.atomic_write(path) as file:
            np.savez(file, **refs)
    return refs


def normalized_gap(test, train, memorizer_test, memorizer_train):
    """(test - train) / (memorizer test - memorizer train): 0 while the network generalizes,
    1 when its gap is the perfect memorizer's. NaN where the memorizer has no gap (bins so
    noisy that no image can be told apart)."""
    span = np.asarray(memorizer_test - memorizer_train, float)
    return np.where(span > 1e-12, (test - train) / np.where(span > 1e-12, span, 1.0), np.nan)


NOISY_HALF = slice(0, flow.NUM_BINS // 2)  # bins of t < 1/2


def noisy_half_gap(test_bins, train_bins, memorizer_test_bins, memorizer_train_bins):
    """The run's one number for 'how much of the possible overfitting has happened': the
    fraction f that best fits gap_k = f * span_k over the noisier half of the noise levels
    (t < 1/2), least squares, with gap_k = test - train and span_k = memorizer test - memorizer
    train in bin k: f = sum(span_k gap_k) / sum(span_k^2). Bins where the memorizer itself
    barely tells train from test (the noisiest: small span) weigh little, so their noise does
    not swamp f. The less noisy half is left out: there the memorizer's velocity toward the
    nearest training image grows like 1 / (1 - t), its test loss explodes, and no network's
    gap is a visible fraction of it."""
    gap = np.asarray(test_bins, float)[NOISY_HALF] - np.asarray(train_bins, float)[NOISY_HALF]
    span = np.asarray(memorizer_test_bins, float)[NOISY_HALF] - np.asarray(memorizer_train_bins, float)[NOISY_HALF]
    return float(span @ gap / (span @ span)) if span @ span > 0 else float("nan")


def make_distances(cfg, velocity, dataset, references, test_set):
    """What the network has learnt, against the exact references (ideal.py): the memorizer, the
    Gaussian fit and the k x k patch memorizer (k = cfg.patch_size). Returns (distances(params)
    -> {'distance_<ref>_bins': (10,)}, constants): per bin of t, |v - v_ref|^2 / |v_ref|^2 of
    the network's velocity on the first cfg.distance_images test inputs (their loss set's noise
    and times), and the same between the references, '<a>_distance_<b>_bins' (a in b's place).
    references() gives exact_references' two, to which the patch memorizer is added. Nothing when
    cfg.distance_images is 0."""
    if cfg.distance_images == 0:
        return (lambda params: {}), {}
    start = time.time()
    images, labels, noise, t = (array[:cfg.distance_images] for array in test_set)
    x_t = np.asarray(flow.interpolate(images, noise, t))  # (n, H, W, C), held-out images noised
    patch = ideal.patch_memorizer_params(data.to_model_range(dataset.train_images), dataset.train_labels,
                                         cfg.num_classes, cfg.patch_size)
    references = {**references(), "patch": (ideal.patch_memorizer_velocity, parallel.replicate(patch))}
    at_inputs = lambda v, params: parallel.run_batched(parallel.data_parallel(v), params, x_t, t, labels,
                                                       batch=cfg.eval_batch)
    v_refs = {name: at_inputs(v, params) for name, (v, params) in references.items()}
    constants = {f"{a}_distance_{b}_bins": ideal.relative_distance_by_bin(v_refs[a], v_refs[b], t)
                 for a in v_refs for b in v_refs if a != b}
    # what the instrument costs, in wall time: its one-off references, and each evaluation's part
    constants["distance_references_seconds"] = time.time() - start
    print(f"distance references (memorizer, Gaussian, {cfg.patch_size}x{cfg.patch_size} patch memorizer on "
          f"{len(t)} test inputs): {constants['distance_references_seconds']:.1f} s", flush=True)

    def distances(params):
        start = time.time()
        v = at_inputs(velocity, params)
        row = {f"distance_{name}_bins": ideal.relative_distance_by_bin(v, v_ref, t) for name, v_ref in v_refs.items()}
        return row | {"distance_seconds": time.time() - start}

    return distances, constants


def make_evaluator(cfg, velocity, dataset, run_dir, key, sample_velocity=None):
    """evaluate(state, step) -> one log row (see the file's docstring). velocity(params, x, t,
    y) is the network, as flow.py takes it, for the losses; sample_velocity (default: the same)
    the one that samples (the U-Net in cfg.sample_dtype)."""
    loss_fn = parallel.data_parallel(lambda p, x, y, noise, t: flow.per_sample_loss(velocity, p, x, y, noise, t))
    sample = make_sampler(cfg, sample_velocity or velocity)
    k_train, k_test, k_sample, k_labels = jax.random.split(key, 4)
    train_rows = np.arange(cfg.eval_train_size) % cfg.num_train  # every image, evenly
    shape = dataset.train_images.shape[1:]
    loss_sets = {}
    for split, split_key, images, labels in [
            ("train", k_train, dataset.train_images[train_rows], dataset.train_labels[train_rows]),
            ("test", k_test, dataset.test_images, dataset.test_labels)]:
        k_noise, k_t = jax.random.split(split_key)
        loss_sets[split] = (data.to_model_range(images), labels,
                            np.asarray(jax.random.normal(k_noise, (len(images), *shape))),
                            np.asarray(flow.stratified_times(k_t, len(images))))
    image_ids = {"train": train_rows, "test": np.arange(len(dataset.test_images))}
    sample_noise = np.asarray(jax.random.normal(k_sample, (cfg.num_samples, *shape)))
    sample_labels = dataset.train_labels[np.asarray(jax.random.randint(k_labels, (cfg.num_samples,), 0, cfg.num_train))]
    # built once, and only if needed: a resumed run reads its constants from references.npz
    references = functools.cache(lambda: exact_references(cfg, dataset))
    refs = load_or_compute_references(cfg, dataset, references, loss_sets, sample_noise, sample_labels, run_dir)
    constants = {k: v for k, v in refs.items() if k not in ("memorizer_index", "gaussian_samples")}
    distances, distance_constants = make_distances(cfg, velocity, dataset, references, loss_sets["test"])
    constants.update(distance_constants)
    fidelity, train_features = make_fidelity(cfg, dataset)
    # Yardsticks for the samples' fidelity, from the same noise and labels: the memorizer's
    # samples (the training images: what a network that copies scores) and the Gaussian's
    # (what a network that has learnt only the training set's mean and covariance scores).
    for name, images in [("memorizer", dataset.train_images[refs["memorizer_index"]]),
                         ("gaussian", refs["gaussian_samples"])]:
        constants.update({f"{name}_{key}": value for key, value in fidelity(images)[0].items()})
    sample_metrics = make_sample_metrics(cfg, dataset, fidelity, train_features)
    samples_dir = Path(run_dir) / "samples"

    def evaluate(state, step, samples=True):
        row = {"step": step, "images_seen": step * cfg.batch_size}
        for split, (images, labels, noise, t) in loss_sets.items():
            losses = parallel.run_batched(loss_fn, state["params"], images, labels, noise, t, batch=cfg.eval_batch)
            row[f"{split}_loss"], row[f"{split}_loss_sem"] = mean_and_sem(losses, image_ids[split])
            row[f"{split}_loss_bins"] = np.asarray(flow.bin_means(t, losses))
        row.update(constants)
        bins = [row["test_loss_bins"], row["train_loss_bins"], refs["memorizer_test_loss_bins"],
                refs["memorizer_train_loss_bins"]]
        row["gap_normalized_bins"], row["gap_normalized"] = normalized_gap(*bins), noisy_half_gap(*bins)
        row.update(distances(state["params"]))
        if not samples:
            return row
        images = sample(state["ema"], sample_noise, sample_labels)
        if jax.process_index() == 0:
            data.save_grid(images[:cfg.grid_samples], samples_dir / f"step_{step:07d}.png")
        row["sample_step"] = step  # the grid of the sample metrics (metrics.steps_of)
        row.update(sample_metrics(images, refs["memorizer_index"], samples_dir / f"step_{step:07d}.npz"))
        return row

    return evaluate
