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

Flags override Config fields (--batch_size 32, --channel_mult 1,2,4); --preset NAME applies
a preset of study.py where it stands among the flags; unknown flags are errors. A killed run
resumes from its last checkpoint when started again with the same run directory.

This file holds the training step, the batch stream, checkpoints and the loop. Data
parallelism is parallel.py's (replicated state, sharded batch, gradients averaged with
lax.pmean), the same code on 1 device, n devices and several hosts; evaluation is
evaluate.py's; speed is measured by bench.py.
"""
import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import data
import evaluate
import features
import files
import flow
import parallel
import rundir
import study
import torchfile
import unet


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    # data (data.py)
    dataset: str = "cifar10"  # 'cifar10', 'leaves' or 'shapes' (built in, offline) or an image folder
    num_train: int = 2048  # N: the first N training images
    num_test: int = 5120
    data_dir: str = "~/.cache/diffmem/data"
    data_seed: int = 0  # which draw of the built-in images; CIFAR-10 and folders are fixed
    data_offset: int = 0  # train on images data_offset .. data_offset + N - 1 (a twin run: --data_offset N)
    # model (unet.UNetConfig); base_channels 16, 32, 64, 128, 192 give the paper's five sizes
    image_size: int = 32
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 3
    attention_resolutions: tuple[int, ...] = (16, 8)
    head_dim: int = 64
    embed_dim: int = 512
    num_classes: int = 10
    norm_groups: int = 32  # GroupNorm groups: gcd(norm_groups, C) at C channels; 0: one per channel
    conditional: bool = True  # the paper's class-conditional model; False: every label is the null label
    # optimization: Adam with optax's defaults, EMA of the params
    batch_size: int = 16  # global batch, split over all devices
    lr: float = 1e-4
    steps: int = 100_000
    ema_decay: float = 0.9999  # per step, ramped up as min(decay, (1 + step) / (10 + step))
    label_dropout: float = 0.1  # ours: label -> null label, so that guidance is possible
    train_dtype: str = "float32"  # of the U-Net's matmul and conv inputs in training ('bfloat16')
    seed: int = 0  # initialization, batch order, training noise, evaluation noise
    # evaluation: losses at num_evals log-spaced steps from first_eval to steps; samples and
    # their metrics at num_sample_evals of those steps, also log-spaced (all: the paper's)
    num_evals: int = 30
    num_sample_evals: int = 10  # the paper samples at every evaluation (preset paper-dense)
    first_eval: int = 100
    eval_train_size: int = 512  # the fixed batch of training images for the train loss
    eval_batch: int = 256  # images per forward pass in evaluation
    sample_steps: int = 250  # Euler steps
    guidance: float = 0.0  # classifier-free guidance weight (0 = plain conditional)
    sample_dtype: str = "float32"  # the same for sampling; the paper preset: 'bfloat16'
    num_samples: int = 512  # generated per sample evaluation (the paper: 5120)
    swd_samples: int = 512  # (the paper: 2000)
    feature_spaces: tuple[str, ...] = ("inception", "sscd", "randconv", "pixels")  # fixed at the run's start
    weights_dir: str = ""  # "" = $DIFFMEM_WEIGHTS, else ~/.cache/diffmem/weights
    allow_missing_weights: bool = False  # True: a new run measures only in the spaces it has weights for
    # what the network has learnt: its velocity against the exact references (ideal.py) on
    # distance_images held-out inputs at every evaluation (0: not measured); patch_size is the
    # k of the k x k patch memorizer, about a quarter of the image side (docs/METHODS.md)
    distance_images: int = 512
    patch_size: int = 9
    grid_samples: int = 64
    # bookkeeping
    run_dir: str = "runs/default"
    checkpoint_minutes: float = 10.0  # and at the end; log.npz is written at every evaluation
    tick_seconds: float = 10.0  # one status line per tick

    def __post_init__(self):
        """Settings that cannot run: one line each, at start-up (ValueError)."""
        positive = ["num_test", "batch_size", "steps", "num_evals", "num_sample_evals", "first_eval", "eval_batch",
                    "sample_steps", "num_samples", "swd_samples", "grid_samples"]
        if bad := [f"{name}={getattr(self, name)}" for name in positive if getattr(self, name) < 1]:
            raise ValueError(f"{', '.join(bad)}: must be at least 1")
        if self.num_train < 2 or self.eval_train_size < 2:
            raise ValueError(f"num_train={self.num_train}, eval_train_size={self.eval_train_size}: need at "
                             f"least 2 (the copy criterion compares each sample with its 2 nearest "
                             f"training images)")
        if not (0 < self.lr < math.inf and 0 <= self.label_dropout < 1 and 0 <= self.ema_decay < 1):
            raise ValueError(f"lr={self.lr} must be finite and > 0, label_dropout={self.label_dropout} and "
                             f"ema_decay={self.ema_decay} in [0, 1)")
        if not (math.isfinite(self.guidance) and 0 <= self.checkpoint_minutes < math.inf
                and 0 <= self.tick_seconds < math.inf):
            raise ValueError(f"guidance={self.guidance} must be finite, checkpoint_minutes={self.checkpoint_minutes} "
                             f"and tick_seconds={self.tick_seconds} finite and >= 0")
        if not (self.run_dir.strip() and self.data_dir.strip()):
            raise ValueError(f"run_dir={self.run_dir!r}, data_dir={self.data_dir!r}: must not be empty")
        if self.data_offset < 0 or not 0 <= self.distance_images <= self.num_test:
            raise ValueError(f"data_offset={self.data_offset} must be >= 0, distance_images={self.distance_images} "
                             f"between 0 and num_test={self.num_test}")
        if self.distance_images and not 1 <= self.patch_size <= self.image_size:
            raise ValueError(f"patch_size={self.patch_size} must be between 1 and image_size={self.image_size} "
                             f"(about a quarter of it), or --distance_images 0")
        if unknown := [s for s in self.feature_spaces if s not in features.SPACES]:
            raise ValueError(f"unknown feature_spaces {unknown}; choose from {', '.join(features.SPACES)}")
        model_config(self, self.sample_dtype)  # the U-Net's own checks
        model_config(self)


def model_config(cfg, compute_dtype=None):
    """The U-Net's own config, from the run's flat Config; compute_dtype default: train_dtype."""
    shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(unet.UNetConfig) if hasattr(cfg, f.name)}
    return unet.UNetConfig(**shared, compute_dtype=compute_dtype or cfg.train_dtype)


# Every random stream of a run comes from one root key, jax.random.key(seed), folded with its
# purpose: no stream of seed s is a stream of another seed.
PURPOSES = ("init", "train", "eval", "batches")


def rng_stream(seed, purpose):
    return jax.random.fold_in(jax.random.key(seed), PURPOSES.index(purpose))


# --- command line and run directory ----------------------------------------------------------


def parse_value(field, text):
    if field.type == tuple[int, ...]:
        return tuple(int(v) for v in text.split(",") if v)
    if field.type == tuple[str, ...]:
        return tuple(v for v in text.split(",") if v)
    if field.type is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(text)
        return text.lower() in ("true", "1")
    return field.type(text)


def flag_help():
    """What --help prints: --preset and every Config field with its default."""
    return (f"flags: --preset NAME ({', '.join(study.PRESETS)}), applied where it stands, and the "
            f"Config fields (defaults shown; presets in study.py):\n"
            + "\n".join(f"  --{field.name} {field.default!r}" for field in dataclasses.fields(Config)))


def parse_flags(argv, base=None):
    """'--field value' pairs, and '--preset name' (applied where it stands) -> overrides."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    overrides, i = dict(base or {}), 0
    while i < len(argv):
        flag = argv[i]
        if flag in ("-h", "--help"):
            print(flag_help())
            raise SystemExit(0)
        name = flag[2:].replace("-", "_") if flag.startswith("--") else None
        if name == "preset" and i + 1 < len(argv):
            if argv[i + 1] not in study.PRESETS:
                raise SystemExit(f"error: unknown preset {argv[i + 1]!r}; choose from {sorted(study.PRESETS)}")
            overrides.update(study.PRESETS[argv[i + 1]])
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


class ConfigError(ValueError):
    """Settings that cannot run together (here, or on this machine); the message names the fix."""


def make_config(fields):
    """Config(**fields); its one-line ValueError becomes a ConfigError."""
    try:
        return Config(**fields)
    except (ValueError, TypeError) as err:
        raise ConfigError(str(err)) from None


# A run saved before these fields existed did not measure what they switch on.
BEFORE_ADDED = {"distance_images": 0}


def resolve_run(requested, fix=None):
    """(Config, status) of starting the run `requested` (a dict of fields: the command line's
    flags, or all of a Config's) in its run_dir: status 'new', 'resume' or 'complete', decided
    once, by rundir.decide (a run directory holding another run is a RunDirError)."""
    defaults = {field.name: field.default for field in dataclasses.fields(Config)}
    fields, status = rundir.decide(requested.get("run_dir", Config.run_dir), requested, defaults, fix,
                                   before_added=BEFORE_ADDED)
    return make_config(fields), status


def fix_feature_spaces(cfg, status):
    """The feature spaces a run measures in are fixed at its start, so that its log arrays stay
    aligned: a new run takes those of cfg.feature_spaces whose weights are present (all of them
    unless cfg.allow_missing_weights); a resumed run needs all of its own."""
    present = features.available_spaces(cfg.weights_dir)
    missing = [space for space in cfg.feature_spaces if space not in present]
    where = cfg.weights_dir or features.default_weights_dir()
    if status != "new":
        if missing:
            raise features.WeightsError(f"{cfg.run_dir} has measured in {', '.join(missing)} since its start, and "
                                        f"their weights are not in {where}: put them back (python features.py "
                                        f"--download) to resume it")
        return cfg
    chosen = tuple(space for space in cfg.feature_spaces if space in present)
    if missing and not cfg.allow_missing_weights:
        raise features.WeightsError(f"no weights for {', '.join(missing)} in {where}: fetch them with `python "
                                    f"features.py --download` (or --weights_dir DIR), or pass --allow_missing_weights "
                                    f"true to measure in {', '.join(chosen) or 'pixel copies'} only")
    if missing:
        print(f"metrics in {', '.join(chosen) or 'pixel copies only'}: no weights for {', '.join(missing)} in "
              f"{where} (--allow_missing_weights)", flush=True)
    return dataclasses.replace(cfg, feature_spaces=chosen)


# --- training state and step ----------------------------------------------------------------


def velocity_fn(cfg, compute_dtype=None):
    """The U-Net as flow.py takes a network: velocity(params, x, t, y)."""
    model = model_config(cfg, compute_dtype)
    return lambda params, x, t, y: unet.apply(params, x, t, y, model)


def make_optimizer(cfg):
    # lr lives in the optimizer state, so runs that differ only in lr share compiled code
    return optax.inject_hyperparams(optax.adam)(learning_rate=cfg.lr)


def init_state(cfg):
    params = unet.init(rng_stream(cfg.seed, "init"), model_config(cfg))
    return {"params": params, "ema": params, "opt": make_optimizer(cfg).init(params),
            "step": jnp.zeros((), jnp.int32)}


def example_keys(cfg, step, example_ids):
    """One PRNG key per example from its position in the global batch, so the noise an
    example gets does not depend on how the batch is split over devices."""
    step_key = jax.random.fold_in(rng_stream(cfg.seed, "train"), step)
    return jax.vmap(jax.random.fold_in, (None, 0))(step_key, example_ids)


def make_train_step(cfg):
    """step(state, images, labels, example_ids) -> (state, loss), pmapped: the state
    replicated, the batch sharded (n_dev, B/n_dev, ...)."""
    velocity, optimizer = velocity_fn(cfg), make_optimizer(cfg)

    def loss_fn(params, keys, images, labels):
        return flow.training_loss(velocity, params, keys, images, labels,
                                  null_label=cfg.num_classes, label_dropout=cfg.label_dropout)

    def train_step(state, images, labels, example_ids):
        # per device: images (B/n_dev, H, W, C), labels and example_ids (B/n_dev,)
        keys = example_keys(cfg, state["step"], example_ids)
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], keys, images, labels)
        grads, loss = jax.lax.pmean((grads, loss), axis_name=parallel.AXIS)  # mean over all devices
        updates, opt_state = optimizer.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        decay = jnp.minimum(cfg.ema_decay, (1.0 + state["step"]) / (10.0 + state["step"]))
        ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state["ema"], params)
        return {"params": params, "ema": ema, "opt": opt_state, "step": state["step"] + 1}, loss

    return parallel.data_parallel(train_step)


def batch_indices(cfg, step):
    """Dataset indices of the global batch at `step`: consecutive slices of a stream of
    per-epoch permutations, a pure function of (seed, step) so a resumed run continues the
    same stream."""
    start = step * cfg.batch_size
    positions = np.arange(start, start + cfg.batch_size)
    epochs, offsets = np.divmod(positions, cfg.num_train)
    purpose = PURPOSES.index("batches")
    perms = {e: np.random.default_rng([cfg.seed, purpose, e]).permutation(cfg.num_train) for e in set(epochs)}
    return np.array([perms[e][o] for e, o in zip(epochs, offsets)])


def eval_steps(cfg):
    """num_evals log-spaced steps from first_eval to steps, always including the last."""
    steps = np.geomspace(min(cfg.first_eval, cfg.steps), cfg.steps, cfg.num_evals)
    return sorted(set(int(round(s)) for s in steps))


def sample_eval_steps(cfg):
    """The evaluation steps that also sample: the ones nearest (in log step) to
    num_sample_evals log-spaced steps over the same range, always including the last."""
    steps = np.array(eval_steps(cfg))
    wanted = np.geomspace(steps[0], steps[-1], min(cfg.num_sample_evals, len(steps)))
    nearest = np.abs(np.log(steps)[None, :] - np.log(wanted)[:, None]).argmin(axis=1)
    return sorted(set(steps[nearest].tolist()) | {int(steps[-1])})


# --- checkpoints: the state as flat {name: array} (rundir.py writes them) --------------------


def flatten(tree):
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def unflatten(like, arrays):
    paths, treedef = jax.tree_util.tree_flatten_with_path(like)
    return jax.tree_util.tree_unflatten(treedef, [arrays[jax.tree_util.keystr(p)] for p, _ in paths])


# --- the loop -------------------------------------------------------------------------------


def format_duration(seconds):
    return f"{seconds / 3600:.1f}h" if seconds > 5400 else f"{seconds / 60:.1f}m" if seconds > 90 else f"{seconds:.0f}s"


def shown(key, value):
    """Whether the status line prints a log entry: scalars that change from row to row."""
    constant = key.startswith(("memorizer_", "gaussian_", "patch_", "fid_count_", "distance_references")) or key in (
        "step", "sample_step", "images_seen", "elapsed_seconds", "distance_seconds")
    return np.ndim(value) == 0 and not constant and not key.endswith("_sem")


def check_finite(loss, step):
    value = float(np.asarray(loss)[0])
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value} at step {step}: training diverged; the last good "
                                 f"checkpoint is kept. Lower --lr or check the data")


def load_dataset(cfg):
    dataset = data.load(cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test, data_dir=cfg.data_dir,
                        image_size=cfg.image_size, seed=cfg.data_seed, num_classes=cfg.num_classes,
                        offset=cfg.data_offset)
    if max(dataset.train_labels.max(), dataset.test_labels.max()) >= cfg.num_classes:
        raise ConfigError(f"{cfg.dataset} has labels up to {dataset.train_labels.max()}, the model "
                          f"num_classes={cfg.num_classes}: raise --num_classes")
    if not cfg.conditional:  # train, evaluate and sample with the null label only
        null = lambda labels: np.full_like(labels, cfg.num_classes)
        dataset = dataclasses.replace(dataset, train_labels=null(dataset.train_labels),
                                      test_labels=null(dataset.test_labels))
    return dataset


def print_schedule(cfg):
    """The run's evaluation schedule, in its first lines: which metrics, how many samples."""
    steps, with_samples = eval_steps(cfg), sample_eval_steps(cfg)
    print(f"evaluation: losses at {len(steps)} steps ({steps[0]}..{steps[-1]}); {cfg.num_samples} samples "
          f"({cfg.sample_steps} Euler steps) at {len(with_samples)} of them, SW on {min(cfg.swd_samples, cfg.num_samples)}, "
          f"feature spaces {', '.join(cfg.feature_spaces) or 'none (pixel copies)'}", flush=True)


def train(run, evaluate_fn=None, fix=None):
    """Run, resume, or (complete) only report the training `run`: a Config, or a dict of its
    fields (the command line's flags). Returns the log. `evaluate_fn(state, step, samples) ->
    dict` is called at every evaluation step with the replicated {"params", "ema"} (default:
    evaluate.make_evaluator); `fix` is what a RunDirError for another config suggests."""
    requested = dataclasses.asdict(run) if isinstance(run, Config) else dict(run)
    cfg, status = resolve_run(requested, fix)
    run_dir = Path(cfg.run_dir)
    if status == "complete":
        _, log, _ = rundir.load_checkpoint(run_dir)
        if jax.process_index() == 0:
            rundir.save_log(run_dir, log)  # the checkpoint's log is the run's: repairs a damaged log.npz
        print(f"{run_dir}: complete ({cfg.steps} steps)", flush=True)
        return log
    if cfg.batch_size % jax.device_count():
        raise ConfigError(f"batch_size {cfg.batch_size} does not split over {jax.device_count()} devices: "
                          f"choose a multiple of {jax.device_count()}")
    cfg = fix_feature_spaces(cfg, status)
    first_host = jax.process_index() == 0  # the hosts of a job share run_dir: the first one writes
    with rundir.lock(run_dir) if first_host else contextlib.nullcontext():
        if first_host:
            rundir.write_config(run_dir, dataclasses.asdict(cfg))  # new, or moved: where it is now
        dataset = load_dataset(cfg)
        if first_host:
            rundir.check_dataset(run_dir, {split: rundir.images_fingerprint(getattr(dataset, f"{split}_images"),
                                                                            getattr(dataset, f"{split}_labels"))
                                           for split in ("train", "test")}, status)
        return train_loop(cfg, status, dataset, evaluate_fn)


def train_loop(cfg, status, dataset, evaluate_fn):
    run_dir = Path(cfg.run_dir)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    print_schedule(cfg)
    evaluate_fn = evaluate_fn or evaluate.make_evaluator(cfg, velocity_fn(cfg), dataset, run_dir,
                                                         rng_stream(cfg.seed, "eval"),
                                                         velocity_fn(cfg, cfg.sample_dtype))
    state, log, elapsed = init_state(cfg), {}, 0.0
    if status == "resume":
        arrays, log, elapsed = rundir.load_checkpoint(run_dir)
        state = unflatten(state, arrays)
        print(f"resuming {run_dir} from step {int(state['step'])}", flush=True)
    start_step = int(state["step"])
    if jax.process_index() == 0:
        rundir.record_start(run_dir, start_step, f"{jax.device_count()} x {jax.devices()[0].device_kind} "
                            f"({jax.default_backend()})", {"jax": jax.__version__, "numpy": np.__version__})
    state = parallel.replicate(state)
    train_step = make_train_step(cfg)
    train_images = data.to_model_range(dataset.train_images)
    todo = [s for s in eval_steps(cfg) if s > start_step]
    with_samples = set(sample_eval_steps(cfg))
    mine = parallel.host_slice(cfg.batch_size)  # this host's part of every global batch
    ids = parallel.shard(np.arange(cfg.batch_size, dtype=np.int32)[mine])
    start_time = time.time()
    tick_time, tick_step, checkpoint_time, loss = start_time, start_step, start_time, None
    for step in range(start_step, cfg.steps):
        idx = batch_indices(cfg, step)[mine]
        previous = loss
        state, loss = train_step(state, parallel.shard(train_images[idx]), parallel.shard(dataset.train_labels[idx]), ids)
        if previous is not None:  # fetched one step late: the device runs on meanwhile
            check_finite(previous, step - 1)
        done = step + 1
        if time.time() - tick_time >= cfg.tick_seconds or done == cfg.steps:
            rate = (done - tick_step) / (time.time() - tick_time)
            print(f"step {done:>7d}/{cfg.steps} | loss {float(loss[0]):.4f} | {rate:6.2f} steps/s | "
                  f"{rate * cfg.batch_size:7.1f} img/s | next eval {todo[0] if todo else '-'} | "
                  f"ETA {format_duration((cfg.steps - done) / max(rate, 1e-9))}", flush=True)
            tick_time, tick_step = time.time(), done
        if todo and done == todo[0]:
            todo.pop(0)
            check_finite(loss, step)
            eval_start = time.time()
            # what evaluation needs, where it is: the replicated params and EMA, no optimizer state
            row = evaluate_fn({"params": state["params"], "ema": state["ema"]}, done, samples=done in with_samples)
            row["elapsed_seconds"] = elapsed + time.time() - start_time
            for key, value in row.items():
                log.setdefault(key, []).append(value)
            print(f"eval  step {done} | " + " | ".join(f"{k} {float(v):.4g}" for k, v in row.items() if shown(k, v))
                  + f" | {time.time() - eval_start:.0f}s", flush=True)
            if jax.process_index() == 0:
                rundir.save_log(run_dir, log)
            tick_time, tick_step = time.time(), done  # evaluation time is not training speed
        # checkpoints on their own clock (the whole state crosses to the host), and at the end
        if done == cfg.steps or time.time() - checkpoint_time >= 60 * cfg.checkpoint_minutes:
            check_finite(loss, step)
            if jax.process_index() == 0:  # the log rides along: a resumed run neither loses nor repeats a row
                rundir.save_checkpoint(run_dir, flatten(parallel.unreplicate(state)), log,
                                       elapsed + time.time() - start_time)
            checkpoint_time = time.time()
    return log


def enable_compilation_cache(path="~/.cache/diffmem/jax"):
    """Keep compiled programs on disk: runs that share shapes (a sweep's runs, a resumed
    run) skip compilation, which is a large part of a short CPU run."""
    jax.config.update("jax_compilation_cache_dir", str(Path(path).expanduser()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


# Errors the user can fix: printed as one line, without a traceback.
USER_ERRORS = (ConfigError, data.DataError, features.WeightsError, torchfile.TorchFileError, files.DownloadError,
               rundir.RunDirError, parallel.AcceleratorError, FileNotFoundError, FloatingPointError)


def main(argv):
    overrides = parse_flags(argv)
    try:
        parallel.init_distributed()
        enable_compilation_cache()
        train(overrides)
    except USER_ERRORS as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
