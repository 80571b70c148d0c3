"""Train a class-conditional U-Net with rectified flow on the first N images of a dataset,
evaluating at log-spaced steps. Every run writes one directory:

    config.json      the resolved Config
    log.npz          flat metric log, arrays indexed by evaluation (numpy alone reads it)
    checkpoint.npz   params, EMA params, optimizer state, step and the log so far
    samples/         a sample grid PNG per evaluation, and the samples with their nearest
                     training images (.npz) for plot.py

    python train.py --preset cpu --run_dir runs/demo          # minutes on a laptop CPU
    python train.py --dataset cifar10 --num_train 2048        # the paper's default run
    python train.py --run_dir runs/demo                       # resume a killed run
    python train.py --bench [flags]                           # img/s, step time, MFU

Flags override Config fields (--batch_size 32, --channel_mult 1,2,4); unknown flags are
errors. Data parallelism is hand-written pmap (see `data_parallel` below): the state is
replicated on every local device, each host feeds only its shard of the global batch, and
gradients are averaged with lax.pmean; 1 device, n devices and several hosts (one process
per host, with JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID set) run the
same code.
"""
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import data
import features
import flow
import metrics
import unet


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    # data (data.py)
    dataset: str = "cifar10"  # 'cifar10', 'shapes' (built in, offline) or an image folder
    num_train: int = 2048  # N: the first N training images
    num_test: int = 5120
    data_dir: str = "~/.cache/diffmem/data"
    image_size: int = 32
    # model (unet.py); base_channels 16, 32, 64, 128, 192 give the paper's five sizes
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 3
    attention_resolutions: tuple[int, ...] = (16, 8)
    head_dim: int = 64
    embed_dim: int = 512
    num_classes: int = 10
    # optimization: Adam with optax's defaults, EMA of the params
    batch_size: int = 16  # global batch, split over all devices
    lr: float = 1e-4
    steps: int = 100_000
    ema_decay: float = 0.9999  # per step, ramped up as min(decay, (1 + step) / (10 + step))
    label_dropout: float = 0.1  # label -> null label, for classifier-free guidance
    seed: int = 0
    # evaluation, at num_evals log-spaced steps from first_eval to steps
    num_evals: int = 30
    first_eval: int = 100
    eval_train_size: int = 512  # the fixed batch of training images for the train loss
    eval_batch: int = 256  # images per forward pass in evaluation
    sample_steps: int = 250  # Euler steps
    guidance: float = 0.0  # classifier-free guidance weight (0 = plain conditional)
    num_samples: int = 5120  # generated per evaluation; FID uses as many as the reference
    swd_samples: int = 2000
    feature_spaces: tuple[str, ...] = ("inception", "sscd", "pixels")  # those with weights
    weights_dir: str = ""  # "" = $DIFFMEM_WEIGHTS, else ~/.cache/diffmem/weights
    grid_samples: int = 64
    # bookkeeping
    run_dir: str = "runs/default"
    checkpoint_minutes: float = 10.0  # also checkpointed at every evaluation
    tick_seconds: float = 10.0  # one status line per tick


PRESETS = {
    # The paper's setup (Appendix A) on CIFAR-10: the Config defaults.
    "paper": {},
    # The built-in data, a small U-Net, short sampling: minutes on a 2-core CPU.
    "cpu": dict(dataset="shapes", num_train=16, num_test=512, image_size=16, base_channels=16,
                channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,), batch_size=16,
                lr=3e-3, steps=2000, ema_decay=0.995, num_evals=8, first_eval=10,
                eval_train_size=256, sample_steps=25, num_samples=100, swd_samples=100,
                feature_spaces=("pixels",), grid_samples=64, checkpoint_minutes=2.0),
}


# --- command line -------------------------------------------------------------------------


def parse_value(field, text):
    if field.type == tuple[int, ...]:
        return tuple(int(v) for v in text.split(",") if v)
    if field.type == tuple[str, ...]:
        return tuple(v for v in text.split(",") if v)
    return field.type(text)


def parse_flags(argv, base=None):
    """'--field value' pairs, and '--preset name' (applied where it stands) -> overrides."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    overrides, i = dict(base or {}), 0
    while i < len(argv):
        flag = argv[i]
        name = flag[2:].replace("-", "_") if flag.startswith("--") else None
        if name == "preset" and i + 1 < len(argv):
            if argv[i + 1] not in PRESETS:
                raise SystemExit(f"error: unknown preset {argv[i + 1]!r}; choose from {sorted(PRESETS)}")
            overrides.update(PRESETS[argv[i + 1]])
        elif name in fields and i + 1 < len(argv):
            try:
                overrides[name] = parse_value(fields[name], argv[i + 1])
            except ValueError:
                kind = getattr(fields[name].type, "__name__", str(fields[name].type))
                raise SystemExit(f"error: --{name} expects {kind}, got {argv[i + 1]!r}")
        else:
            raise SystemExit(f"error: unknown flag {flag!r} (or missing value); flags are --preset "
                             f"and the Config fields: {', '.join('--' + n for n in fields)}")
        i += 2
    return overrides


# --- data parallelism: the only place that knows about devices ------------------------------


def data_parallel(fn):
    """pmap fn over this host's devices, with 'batch' as the collective axis name. Inputs
    carry a leading device axis (n_local, ...): state replicated, batches sharded."""
    return jax.pmap(fn, axis_name="batch")


def replicate(tree):
    """A copy of tree on every local device: (n_local, ...), laid out as pmap lays out its
    outputs, so the first training step does not compile a second time."""
    n = jax.local_device_count()
    stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), tree)
    return data_parallel(lambda x: x)(stacked)


def unreplicate(tree):
    """The copy on this host's first device, as numpy."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)).reshape(x.shape[1:]), tree)


def shard(x):
    """This host's part of a global batch -> (n_local, B/n_global, ...) for pmap."""
    n = jax.local_device_count()
    return x.reshape(n, x.shape[0] // n, *x.shape[1:])


def host_slice(n_global_items):
    """The range of a global batch that this host loads: each host loads only its shard."""
    per_host = n_global_items // jax.process_count()
    return slice(jax.process_index() * per_host, (jax.process_index() + 1) * per_host)


def gather(x):
    """Per-device outputs (n_local, b, ...) of every host -> the global (n_global * b, ...)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        x = multihost_utils.process_allgather(x, tiled=True)
    x = np.asarray(x)
    return x.reshape(-1, *x.shape[2:])


# --- training state and step ----------------------------------------------------------------


def model_config(cfg):
    """The U-Net's own config, from the run's flat Config."""
    return unet.UNetConfig(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(unet.UNetConfig)})


def velocity_fn(cfg):
    model = model_config(cfg)
    return lambda params, x, t, y: unet.apply(params, x, t, y, model)


def make_optimizer(cfg):
    # lr lives in the optimizer state, so runs that differ only in lr share compiled code
    return optax.inject_hyperparams(optax.adam)(learning_rate=cfg.lr)


def init_state(cfg):
    params = unet.init(jax.random.key(cfg.seed), model_config(cfg))
    return {"params": params, "ema": params, "opt": make_optimizer(cfg).init(params),
            "step": jnp.zeros((), jnp.int32)}


def example_keys(cfg, step, example_ids):
    """One PRNG key per example from its position in the global batch, so the noise an
    example gets does not depend on how the batch is split over devices."""
    step_key = jax.random.fold_in(jax.random.key(cfg.seed + 1), step)
    return jax.vmap(jax.random.fold_in, (None, 0))(step_key, example_ids)


def make_train_step(cfg):
    velocity, optimizer = velocity_fn(cfg), make_optimizer(cfg)

    def loss_fn(params, keys, images, labels):
        return flow.training_loss(velocity, params, keys, images, labels,
                                  null_label=cfg.num_classes, label_dropout=cfg.label_dropout)

    def train_step(state, images, labels, example_ids):
        # per device: images (B/n_dev, H, W, C), labels and example_ids (B/n_dev,)
        keys = example_keys(cfg, state["step"], example_ids)
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], keys, images, labels)
        grads, loss = jax.lax.pmean((grads, loss), axis_name="batch")  # mean over all devices
        updates, opt_state = optimizer.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        decay = jnp.minimum(cfg.ema_decay, (1.0 + state["step"]) / (10.0 + state["step"]))
        ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state["ema"], params)
        return {"params": params, "ema": ema, "opt": opt_state, "step": state["step"] + 1}, loss

    return data_parallel(train_step)


def batch_indices(cfg, step):
    """Dataset indices of the global batch at `step`: consecutive slices of a stream of
    per-epoch permutations, a pure function of (seed, step) so a resumed run continues the
    same stream."""
    start = step * cfg.batch_size
    positions = np.arange(start, start + cfg.batch_size)
    epochs, offsets = np.divmod(positions, cfg.num_train)
    perms = {e: np.random.default_rng([cfg.seed, e]).permutation(cfg.num_train) for e in set(epochs)}
    return np.array([perms[e][o] for e, o in zip(epochs, offsets)])


def eval_steps(cfg):
    """num_evals log-spaced steps from first_eval to steps, always including the last."""
    steps = np.geomspace(min(cfg.first_eval, cfg.steps), cfg.steps, cfg.num_evals)
    return sorted(set(int(round(s)) for s in steps))


# --- checkpoints and logs: atomic writes ------------------------------------------------------


def save_npz(path, arrays):
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a kill leaves the old file or the new one, never half


def flatten(tree, prefix):
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {prefix + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def unflatten(like, arrays, prefix):
    paths, treedef = jax.tree_util.tree_flatten_with_path(like)
    return jax.tree_util.tree_unflatten(treedef, [arrays[prefix + jax.tree_util.keystr(p)] for p, _ in paths])


def save_checkpoint(run_dir, state, log):
    arrays = flatten(state, "state")
    if not all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f"):
        raise FloatingPointError("non-finite parameters: not overwriting the last good checkpoint")
    arrays.update({f"log/{k}": np.asarray(v) for k, v in log.items()})
    save_npz(Path(run_dir) / "checkpoint.npz", arrays)


def load_checkpoint(run_dir, like):
    with np.load(Path(run_dir) / "checkpoint.npz") as f:
        arrays = dict(f)
    log = {k[4:]: list(v) for k, v in arrays.items() if k.startswith("log/")}
    return unflatten(like, arrays, "state"), log


def save_log(run_dir, log):
    save_npz(Path(run_dir) / "log.npz", {k: np.asarray(v) for k, v in log.items()})


# Fields that may differ when a run is resumed: where things are, how often it reports.
FREE_ON_RESUME = {"run_dir", "data_dir", "weights_dir", "checkpoint_minutes", "tick_seconds"}


def prepare_run_dir(cfg):
    """Create the run directory, or check that an existing one holds the same config."""
    run_dir = Path(cfg.run_dir)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.json"
    if saved.exists():
        old = json.loads(saved.read_text())
        new = json.loads(json.dumps(dataclasses.asdict(cfg)))
        diff = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in new
                if old.get(k) != new[k] and k not in FREE_ON_RESUME]
        if diff:
            raise SystemExit(f"error: {run_dir} holds a run with another config ({'; '.join(diff)}); "
                             f"pick a new --run_dir, or resume with `python train.py --run_dir {run_dir}`")
    elif jax.process_index() == 0:
        tmp = run_dir / "config.json.tmp"
        tmp.write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n")
        os.replace(tmp, saved)
    return run_dir


def load_config(argv):
    """Flags -> Config; with only --run_dir (and no other field), the run's saved config."""
    overrides = parse_flags(argv)
    saved = Path(overrides.get("run_dir", Config.run_dir)) / "config.json"
    if saved.exists() and set(overrides) <= {"run_dir"}:
        fields = json.loads(saved.read_text())
        return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    return Config(**overrides)


# --- evaluation -------------------------------------------------------------------------------


def run_batched(fn, params, *arrays, batch):
    """fn(params, *chunks) over all rows of `arrays` in global chunks of `batch` rows, padded
    to split over every device; each host feeds its slice. Returns the rows as numpy."""
    n_dev = jax.device_count()
    batch = -(-min(batch, len(arrays[0])) // n_dev) * n_dev
    params, mine, out = replicate(params), host_slice(batch), []
    for start in range(0, len(arrays[0]), batch):
        chunk = [a[start:start + batch] for a in arrays]
        real = len(chunk[0])
        chunk = [np.concatenate([c, np.repeat(c[:1], batch - real, axis=0)]) for c in chunk]
        out.append(gather(fn(params, *[shard(c[mine]) for c in chunk]))[:real])
    return np.concatenate(out)


def over_devices(batch):
    """map_batches for features.feature_extractor: the network over every device, in global
    batches of `batch` images."""
    return lambda apply, params, images: run_batched(data_parallel(apply), params, images, batch=batch)


def reference_features(extract, space, images, cache_dir):
    """Features of a reference split, computed once per (space, images) and cached on disk
    under a hash of the image bytes."""
    digest = hashlib.sha1(images.tobytes()).hexdigest()[:16]
    path = Path(cache_dir).expanduser() / f"{space}-{len(images)}-{digest}.npy"
    if path.exists():
        return np.load(path)
    feats = extract(images)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    os.replace(tmp, path)
    return feats


def make_sample_metrics(cfg, dataset):
    """sample_metrics(samples uint8 (n, H, W, 3), npz_path) -> log entries, each named after
    its feature space: the pixel-ratio copy fraction (mem_ratio_pixels); in every space of
    cfg.feature_spaces with weights present, sliced Wasserstein distance and FID against the
    train and test splits (swd_<space>_<split>, fid_<space>_<split>); with SSCD, the
    memorization score (mem_sscd). Writes the first grid_samples samples with their nearest
    training images to npz_path, for plot.py."""
    present = features.available_spaces(cfg.weights_dir)
    spaces = [space for space in cfg.feature_spaces if space in present]
    if missing := [space for space in cfg.feature_spaces if space not in present]:
        print(f"metrics in {', '.join(spaces)}; no weights for {', '.join(missing)} in "
              f"{cfg.weights_dir or features.default_weights_dir()} (python features.py --download)", flush=True)
    cache_dir = Path(cfg.data_dir).expanduser().parent / "features"
    extractors = {space: features.feature_extractor(space, cfg.weights_dir, map_batches=over_devices(cfg.eval_batch))
                  for space in spaces}
    refs = {(space, split): reference_features(extractors[space], space, images, cache_dir)
            for space in spaces
            for split, images in [("train", dataset.train_images), ("test", dataset.test_images)]}

    def sample_metrics(samples, npz_path):
        row, shown = {}, slice(0, cfg.grid_samples)
        ratio, nearest = metrics.nearest_neighbour_ratio(samples, dataset.train_images)
        row["mem_ratio_pixels"] = metrics.copy_fraction(ratio)
        extra = {"samples": samples[shown], "nearest_pixels": dataset.train_images[nearest[shown, 0]],
                 "ratio_pixels": ratio[shown]}
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
            save_npz(npz_path, extra)
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


def make_evaluator(cfg, dataset, run_dir):
    """evaluate(state, step) -> one log row: train/test loss (mean, standard error, per
    noise-level bin) with noise and times fixed once, so rows differ only by the network;
    samples from the EMA params, also from fixed noise and labels; a sample grid; and the
    sample metrics of metrics.py in every feature space with weights."""
    velocity = velocity_fn(cfg)
    loss_fn = data_parallel(lambda p, x, y, noise, t: flow.per_sample_loss(velocity, p, x, y, noise, t))
    sample_fn = data_parallel(lambda p, noise, y: flow.sample(
        velocity, p, noise, y, steps=cfg.sample_steps, null_label=cfg.num_classes, guidance=cfg.guidance))
    k_train, k_test, k_sample, k_labels = jax.random.split(jax.random.key(cfg.seed + 2), 4)
    train_rows = np.arange(cfg.eval_train_size) % cfg.num_train  # every image, evenly
    shape = dataset.train_images.shape[1:]
    loss_sets = {}
    for split, key, images, labels in [
            ("train", k_train, dataset.train_images[train_rows], dataset.train_labels[train_rows]),
            ("test", k_test, dataset.test_images, dataset.test_labels)]:
        k_noise, k_t = jax.random.split(key)
        loss_sets[split] = (data.to_model_range(images), labels,
                            np.asarray(jax.random.normal(k_noise, (len(images), *shape))),
                            np.asarray(flow.stratified_times(k_t, len(images))))
    image_ids = {"train": train_rows, "test": np.arange(len(dataset.test_images))}
    sample_noise = np.asarray(jax.random.normal(k_sample, (cfg.num_samples, *shape)))
    sample_labels = dataset.train_labels[np.asarray(jax.random.randint(k_labels, (cfg.num_samples,), 0, cfg.num_train))]
    sample_metrics = make_sample_metrics(cfg, dataset)

    def evaluate(state, step):
        row = {"step": step, "images_seen": step * cfg.batch_size}
        for split, (images, labels, noise, t) in loss_sets.items():
            losses = run_batched(loss_fn, state["params"], images, labels, noise, t, batch=cfg.eval_batch)
            row[f"{split}_loss"], row[f"{split}_loss_sem"] = mean_and_sem(losses, image_ids[split])
            row[f"{split}_loss_bins"] = np.asarray(flow.bin_means(t, losses))
        samples = data.to_uint8(run_batched(sample_fn, state["ema"], sample_noise, sample_labels,
                                            batch=cfg.eval_batch))
        if jax.process_index() == 0:
            data.save_grid(samples[:cfg.grid_samples], run_dir / "samples" / f"step_{step:07d}.png")
        row.update(sample_metrics(samples, run_dir / "samples" / f"step_{step:07d}.npz"))
        return row

    return evaluate


# --- the loop -------------------------------------------------------------------------------


def format_duration(seconds):
    return f"{seconds / 3600:.1f}h" if seconds > 5400 else f"{seconds / 60:.1f}m" if seconds > 90 else f"{seconds:.0f}s"


def train(cfg, evaluate=None):
    """Run, or resume, the training described by cfg; returns the log. `evaluate(state,
    step) -> dict` is called at every evaluation step (default: make_evaluator)."""
    if cfg.batch_size % jax.device_count():
        raise SystemExit(f"error: batch_size {cfg.batch_size} does not split over {jax.device_count()} devices")
    run_dir = prepare_run_dir(cfg)
    dataset = data.load(cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test,
                        data_dir=cfg.data_dir, image_size=cfg.image_size, seed=cfg.seed)
    evaluate = evaluate or make_evaluator(cfg, dataset, run_dir)
    state, log = init_state(cfg), {}
    if (run_dir / "checkpoint.npz").exists():
        state, log = load_checkpoint(run_dir, state)
        print(f"resuming {run_dir} from step {int(state['step'])}", flush=True)
    start_step = int(state["step"])
    state = replicate(state)
    train_step = make_train_step(cfg)
    train_images = data.to_model_range(dataset.train_images)
    todo = [s for s in eval_steps(cfg) if s > start_step]
    mine = host_slice(cfg.batch_size)
    ids = shard(np.arange(cfg.batch_size, dtype=np.int32)[mine])
    tick_time, tick_step, checkpoint_time, loss = time.time(), start_step, time.time(), None
    for step in range(start_step, cfg.steps):
        idx = batch_indices(cfg, step)[mine]  # this host's shard of the global batch
        previous = loss
        state, loss = train_step(state, shard(train_images[idx]), shard(dataset.train_labels[idx]), ids)
        if previous is not None:  # fetched one step late: the device runs on meanwhile
            check_finite(previous, step - 1)
        done = step + 1
        if time.time() - tick_time >= cfg.tick_seconds or done == cfg.steps:
            rate = (done - tick_step) / (time.time() - tick_time)
            print(f"step {done:>7d}/{cfg.steps} | loss {float(loss[0]):.4f} | {rate:6.2f} steps/s | "
                  f"{rate * cfg.batch_size:7.1f} img/s | next eval {todo[0] if todo else '-'} | "
                  f"ETA {format_duration((cfg.steps - done) / max(rate, 1e-9))}", flush=True)
            tick_time, tick_step = time.time(), done
        evaluated = bool(todo) and done == todo[0]
        if evaluated:
            todo.pop(0)
            check_finite(loss, step)
            eval_start = time.time()
            row = evaluate(unreplicate(state), done)
            for key, value in row.items():
                log.setdefault(key, []).append(value)
            print(f"eval  step {done} | " + " | ".join(
                f"{k} {float(v):.4g}" for k, v in row.items() if np.ndim(v) == 0 and k != "step")
                + f" | {time.time() - eval_start:.0f}s", flush=True)
            tick_time, tick_step = time.time(), done  # evaluation time is not training speed
        if evaluated or done == cfg.steps or time.time() - checkpoint_time > 60 * cfg.checkpoint_minutes:
            check_finite(loss, step)
            if jax.process_index() == 0:
                save_checkpoint(run_dir, unreplicate(state), log)  # the log rides along, so
                save_log(run_dir, log)  # a resumed run neither loses nor repeats a row
            checkpoint_time = time.time()
    return log


def check_finite(loss, step):
    value = float(np.asarray(loss)[0])
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value} at step {step}: training diverged; the last good "
                                 f"checkpoint is kept. Lower --lr or check the data")


# --- benchmark --------------------------------------------------------------------------------

# Dense float32 peak (TF32 where XLA uses it for float32 matmuls) of known accelerators.
DATASHEET_TFLOPS = {"H100": 494.7, "H200": 494.7, "A100": 156.0}


def timed(fn, *args, repeats):
    """(seconds for the first call, incl. compilation; median seconds of the next `repeats`)."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return first, float(np.median(times))


def matmul_peak_flops(n=2048):
    """The float32 matmul rate this device reaches: the yardstick for MFU on any device."""
    a = jax.device_put(np.random.default_rng(0).standard_normal((n, n), np.float32))
    _, seconds = timed(jax.jit(lambda x: x @ x), a, repeats=10)
    return 2 * n ** 3 / seconds


def benchmark(cfg, repeats=10):
    """Print train img/s, step time, sampling img/s and MFU for cfg's model and batch."""
    n_dev, device = jax.device_count(), jax.devices()[0]
    params, velocity = init_state(cfg)["params"], velocity_fn(cfg)
    state = replicate(init_state(cfg))
    b, s = cfg.batch_size, cfg.image_size
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32)
    labels = rng.integers(0, cfg.num_classes, b).astype(np.int32)
    ids = np.arange(b, dtype=np.int32)
    train_step = make_train_step(cfg)
    step_fn = lambda st: train_step(st, shard(images), shard(labels), shard(ids))[0]
    compile_s, step_s = timed(step_fn, state, repeats=repeats)
    # FLOPs of one step (forward + backward on the global batch), from XLA's cost model
    loss = lambda p, k, x, y: flow.training_loss(velocity, p, k, x, y, null_label=cfg.num_classes,
                                                 label_dropout=cfg.label_dropout)
    keys = example_keys(cfg, 0, ids)
    step_flops = jax.jit(jax.grad(loss)).lower(params, keys, images, labels) \
        .compile().cost_analysis()["flops"]
    # sampling: one Euler step on an evaluation batch, times the number of steps
    nb = -(-cfg.eval_batch // n_dev) * n_dev
    euler = data_parallel(lambda p, x, y, t: velocity(p, x, t, y))
    x = shard(rng.standard_normal((nb, s, s, 3)).astype(np.float32))
    y, t = shard(np.zeros(nb, np.int32)), shard(np.full(nb, 0.5, np.float32))
    _, euler_s = timed(euler, state["ema"], x, y, t, repeats=repeats)
    peak = matmul_peak_flops()
    kind = next((k for k in DATASHEET_TFLOPS if k in device.device_kind), None)
    print(f"device: {n_dev} x {device.device_kind} ({device.platform}); model C={cfg.base_channels} "
          f"mult={cfg.channel_mult} blocks={cfg.num_res_blocks} {s}x{s}: {unet.count_params(params):,} params")
    print(f"train   batch {b}: {step_s * 1e3:.1f} ms/step, {b / step_s:.1f} img/s "
          f"(first step incl. compilation {compile_s:.1f} s), {step_flops / 1e9:.2f} GFLOP/step")
    print(f"sample  batch {nb}: {nb / (euler_s * cfg.sample_steps):.3g} img/s at {cfg.sample_steps} "
          f"Euler steps ({euler_s * 1e3:.1f} ms per step)")
    print(f"MFU     {100 * step_flops / step_s / (n_dev * peak):.1f}% of the measured float32 matmul "
          f"peak ({peak / 1e9:.0f} GFLOP/s per device)"
          + (f", {100 * step_flops / step_s / (n_dev * DATASHEET_TFLOPS[kind] * 1e12):.1f}% of the "
             f"{kind} datasheet ({DATASHEET_TFLOPS[kind]} TFLOP/s)" if kind else ""))


def enable_compilation_cache(path="~/.cache/diffmem/jax"):
    """Keep compiled programs on disk: runs that share shapes (a sweep's runs, a resumed
    run) skip compilation, which is a large part of a short CPU run."""
    jax.config.update("jax_compilation_cache_dir", str(Path(path).expanduser()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def init_distributed():
    """Several hosts: start one process per host with JAX_COORDINATOR_ADDRESS (host:port of
    process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID set; on one host this does nothing."""
    if "JAX_NUM_PROCESSES" in os.environ:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts (tests)
        jax.distributed.initialize(os.environ["JAX_COORDINATOR_ADDRESS"],
                                   int(os.environ["JAX_NUM_PROCESSES"]), int(os.environ["JAX_PROCESS_ID"]))
        from jax.experimental import multihost_utils

        # set up the hosts' collective channel now, while all of them are at this line: made
        # lazily at the first computation instead, a host that is slower to get there (data,
        # compilation) can make the others time out
        multihost_utils.sync_global_devices("hosts up")


# Errors the user can fix: printed as one line, without a traceback.
USER_ERRORS = (data.DataError, FileNotFoundError, FloatingPointError)


def main(argv):
    init_distributed()
    enable_compilation_cache()
    bench = "--bench" in argv
    cfg = load_config([a for a in argv if a != "--bench"])
    try:
        if bench:
            benchmark(cfg)
        else:
            train(cfg)
    except USER_ERRORS as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
