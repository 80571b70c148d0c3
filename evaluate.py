"""Evaluation of a run at one step: the numbers of one row of its log.npz.

    evaluate = make_evaluator(cfg, velocity, dataset, run_dir, key)
    row = evaluate(state, step)       # state: {"params", "ema", ...} as numpy

A row holds
- the denoising loss on a fixed set of training images and on the test set, with its
  standard error and its means in 10 noise-level bins. Noise and times are drawn once (from
  `key`), so rows differ only by the network. Losses use the raw parameters, as the loss
  the optimizer sees;
- sample metrics: samples from the EMA parameters, from noise and labels also fixed once,
  then the pixel-space copy fraction, and in every feature space of cfg.feature_spaces the
  sliced Wasserstein distance and FID against the train and test splits, and with SSCD the
  paper's memorization score. A sample grid PNG and the first samples beside their nearest
  training images (.npz, for plot.py) go to run_dir/samples/.

Features of the two reference splits are computed once and cached on disk under a key of
everything they depend on (features.fingerprint and the images' bytes).
"""
import hashlib
import math
from pathlib import Path

import jax
import numpy as np

import data
import features
import flow
import metrics
import parallel


def reference_features(extract, fingerprint, images, cache_dir):
    """extract(images), cached under cache_dir by the extractor's fingerprint and the images."""
    digest = hashlib.sha256(fingerprint.encode() + str(images.shape).encode() + images.tobytes()).hexdigest()
    path = Path(cache_dir).expanduser() / f"{fingerprint}-{len(images)}-{digest[:16]}.npy"
    if path.exists():  # also when another job of the array wrote it
        return np.load(path)
    feats = extract(images)
    with data.atomic_write(path) as file:
        np.save(file, feats)
    return feats


def make_sample_metrics(cfg, dataset):
    """sample_metrics(samples uint8 (n, H, W, 3), npz_path) -> log entries named after their
    feature space: mem_ratio_pixels; swd_<space>_<split> and fid_<space>_<split> for every space
    in cfg.feature_spaces; mem_sscd with SSCD. Writes the first grid_samples samples with their
    nearest training images to npz_path, for plot.py.

    FID: the paper compares as many generated samples as the reference split holds. We
    generate num_samples; where the split holds more (N = 8192 or 16384 at the paper's 5,120
    samples), all num_samples are compared against the whole split. FID's bias depends on
    both counts, logged as fid_count_generated and fid_count_<split>."""
    spaces = cfg.feature_spaces
    cache_dir = Path(cfg.data_dir).expanduser().parent / "features"
    extractors, refs = {}, {}
    for space in spaces:
        extractors[space] = features.feature_extractor(space, cfg.weights_dir, allow_download=False,
                                                       map_batches=parallel.over_devices(cfg.eval_batch))
        fingerprint = features.fingerprint(space, cfg.weights_dir)
        for split, images in [("train", dataset.train_images), ("test", dataset.test_images)]:
            refs[space, split] = (extractors[space](images) if space == "pixels" else
                                  reference_features(extractors[space], fingerprint, images, cache_dir))

    def sample_metrics(samples, npz_path):
        row, shown = {}, slice(0, cfg.grid_samples)
        ratio, nearest = metrics.nearest_neighbour_ratio(samples, dataset.train_images)
        row["mem_ratio_pixels"] = metrics.copy_fraction(ratio)
        extra = {"samples": samples[shown], "nearest_pixels": dataset.train_images[nearest[shown, 0]],
                 "ratio_pixels": ratio[shown]}
        for split, images in [("train", dataset.train_images), ("test", dataset.test_images)]:
            row[f"fid_count_{split}"] = len(images)
        row["fid_count_generated"] = len(samples)
        for space in spaces:
            generated = extractors[space](samples)
            if space == "sscd":
                cosine, index = metrics.nearest_by_cosine(generated, refs[space, "train"])
                row["mem_sscd"] = metrics.memorization_score(cosine[:, 0])
                extra.update(nearest_sscd=dataset.train_images[index[shown, 0]], cosine_sscd=cosine[shown, 0])
            for split in ("train", "test"):
                ref = refs[space, split]
                row[f"swd_{space}_{split}"] = metrics.sliced_wasserstein(generated[:cfg.swd_samples], ref)
                row[f"fid_{space}_{split}"] = metrics.fid(generated[:len(ref)], ref)
        if jax.process_index() == 0:
            with data.atomic_write(npz_path) as file:
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


def make_evaluator(cfg, velocity, dataset, run_dir, key):
    """evaluate(state, step) -> one log row (see the file's docstring). velocity(params, x, t,
    y) is the network, as flow.py takes it."""
    loss_fn = parallel.data_parallel(lambda p, x, y, noise, t: flow.per_sample_loss(velocity, p, x, y, noise, t))
    sample_fn = parallel.data_parallel(lambda p, noise, y: flow.sample(
        velocity, p, noise, y, steps=cfg.sample_steps, null_label=cfg.num_classes, guidance=cfg.guidance))
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
    sample_metrics = make_sample_metrics(cfg, dataset)
    samples_dir = Path(run_dir) / "samples"

    def evaluate(state, step):
        row = {"step": step, "images_seen": step * cfg.batch_size}
        for split, (images, labels, noise, t) in loss_sets.items():
            losses = parallel.run_batched(loss_fn, state["params"], images, labels, noise, t, batch=cfg.eval_batch)
            row[f"{split}_loss"], row[f"{split}_loss_sem"] = mean_and_sem(losses, image_ids[split])
            row[f"{split}_loss_bins"] = np.asarray(flow.bin_means(t, losses))
        samples = data.to_uint8(parallel.run_batched(sample_fn, state["ema"], sample_noise, sample_labels,
                                                     batch=cfg.eval_batch))
        if jax.process_index() == 0:
            data.save_grid(samples[:cfg.grid_samples], samples_dir / f"step_{step:07d}.png")
        row.update(sample_metrics(samples, samples_dir / f"step_{step:07d}.npz"))
        return row

    return evaluate

