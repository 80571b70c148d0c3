"""What a run or a sweep will cost, before anything starts: FLOPs of training and of every
part of evaluation, from XLA's cost analysis of the project's own functions, and the wall
time they would take on named hardware at a stated utilization.

The functions are traced and lowered for abstract shapes, never run: the count is of the
program the function is, before a backend rewrites it (fusions, library calls), so it is the
same for every backend. tests/test_plan.py checks it against a hand count of the U-Net's
matmuls (the count is 0-25% above it: norms, activations, softmax). A compiled program's own
count depends on the backend: on this CPU it came out 5-12% below the hand count.

    python plan.py --preset paper                          # one run (Config flags as train.py)
    python plan.py --preset paper --hardware TPU-v5p --devices 16 --utilization 0.35
    python sweep.py --axis data --preset paper --plan      # every run of an axis, and the total

Counted per run:
    train       the train step (forward, backward, Adam, EMA) x steps
    losses      the loss forward on eval_train_size + num_test images, at every evaluation
    sampling    one U-Net call per sample per Euler step (two with guidance), at every
                sample evaluation
    references  ideal.py's memorizer and Gaussian, once per run: losses on the evaluation
                sets and their samples (the memorizer's cost grows with N)
    features    the feature networks on the samples of every sample evaluation, once on the
                two references' samples, and once on the train and test splits (cached)
    host        copy detection in numpy on the host (nearest training images of every sample),
                listed apart: it does not run on the accelerator
Projected time = device FLOPs / (devices x peak x utilization). The peak is the datasheet's
dense rate for the precision XLA uses for float32 matmuls by default (TF32 on A100/H100/H200,
one bfloat16 pass on TPUs; PRECISIONS below), or bfloat16 with --bf16. '--hardware cpu' takes
this machine's measured float32 matmul rate instead (bench.py measures it, and the
utilization a real step reaches).
"""
import argparse
import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import convnets
import features
import ideal
import train

# Datasheet dense peaks, TFLOP/s per chip: (float32 matmuls as XLA runs them by default, bfloat16).
HARDWARE = {"H100": (494.7, 989.4), "H200": (494.7, 989.4), "A100": (156.0, 312.0),
            "TPU-v5e": (197.0, 197.0), "TPU-v5p": (459.0, 459.0)}
PRECISIONS = "float32 matmuls: TF32 on A100/H100/H200, one bfloat16 pass on TPU v5e/v5p"
FEATURE_SIZES = {"inception": 2048, "sscd": 512}


def flops(fn, *shapes):
    """XLA's FLOP count of jax.jit(fn) lowered for arguments of these shapes
    (jax.ShapeDtypeStruct trees); nothing is compiled or run."""
    return float(jax.jit(fn).lower(*shapes).cost_analysis()["flops"])


def shape(*dims, dtype=jnp.float32):
    return jax.ShapeDtypeStruct(dims, dtype)


@functools.lru_cache(maxsize=None)
def unet_costs(model, batch_size):
    """(FLOPs of one train step on a global batch, FLOPs of one U-Net forward per image)."""
    fields = {k: getattr(model, k) for k in model.__dataclass_fields__ if k != "compute_dtype"}
    cfg = train.Config(batch_size=batch_size, train_dtype=model.compute_dtype, distance_images=0, **fields)
    state = jax.eval_shape(lambda: train.init_state(cfg))
    step = train.make_train_step(cfg)  # pmapped: one device's program on the whole batch
    size = model.image_size
    images, labels = shape(1, batch_size, size, size, 3), shape(1, batch_size, dtype=jnp.int32)
    replicated = jax.tree.map(lambda s: jax.ShapeDtypeStruct((1,) + s.shape, s.dtype), state)
    train_flops = float(step.lower(replicated, images, labels, labels).cost_analysis()["flops"])
    velocity, b = train.velocity_fn(cfg), 64
    forward = flops(velocity, state["params"], shape(b, size, size, 3), shape(b),
                    shape(b, dtype=jnp.int32)) / b
    return train_flops, forward


@functools.lru_cache(maxsize=None)
def feature_flops(space, image_size):
    """FLOPs of one feature-network forward per image (random weights: only shapes matter)."""
    b = 8
    images = shape(b, image_size, image_size, 3, dtype=jnp.uint8)
    state = convnets.random_torch_state(space) if space in features.WEIGHTS else None
    return flops(*features.network_and_params(space, state), images) / b


def reference_flops(cfg):
    """FLOPs of ideal.py's references for one run: memorizer and Gaussian losses on the
    evaluation sets, and their samples."""
    loss_images = cfg.eval_train_size + cfg.num_test
    calls = cfg.num_samples * cfg.sample_steps * (1 if cfg.guidance == 0 else 2)
    return global_reference_flops(cfg) * (loss_images + calls)


@functools.lru_cache(maxsize=None)
def global_reference_flops(cfg):
    """FLOPs of the memorizer's and the Gaussian's velocity on one image."""
    d, n, b = cfg.image_size ** 2 * 3, cfg.num_train, 64
    # all N images as one chunk: XLA counts a loop's body once, so a scan over chunks would
    # be counted as one chunk
    memorizer = {"images": shape(1, n, d), "labels": shape(1, n, dtype=jnp.int32),
                 "half_sq_norms": shape(1, n), "mean": shape(d),
                 "has_class": shape(cfg.num_classes + 1, dtype=jnp.bool_)}
    gaussian = {"mean": shape(d), "eigenvalues": shape(d), "eigenvectors": shape(d, d)}
    x, t, y = shape(b, cfg.image_size, cfg.image_size, 3), shape(b), shape(b, dtype=jnp.int32)
    per_memorizer = flops(ideal.memorizer_velocity, memorizer, x, t, y) / b
    per_gaussian = flops(ideal.gaussian_velocity, gaussian, x, t, y) / b
    return per_memorizer + per_gaussian


def distance_flops(cfg, forward, n_evals):
    """FLOPs of evaluate.make_distances: the network's velocity on distance_images held-out
    inputs at every evaluation, and the three references' (memorizer, Gaussian fit, patch
    memorizer) on them once."""
    n, size, k = cfg.distance_images, cfg.image_size, cfg.patch_size
    if n == 0:
        return 0.0
    patches = cfg.num_train * (size - k + 1) ** 2  # every k x k patch, as one chunk (see reference_flops)
    patch = {"patches": shape(1, patches, k, k, 3), "labels": shape(1, patches, dtype=jnp.int32),
             "half_sq_norms": shape(1, patches), "mean": shape(k, k, 3),
             "has_class": shape(cfg.num_classes + 1, dtype=jnp.bool_)}
    b = 8
    x, t, y = shape(b, size, size, 3), shape(b), shape(b, dtype=jnp.int32)
    per_patch = flops(ideal.patch_memorizer_velocity, patch, x, t, y) / b
    return forward * n * n_evals + (per_patch + global_reference_flops(cfg)) * n


def run_costs(cfg):
    """{part: FLOPs} of one run (see the file's docstring for the parts)."""
    model = train.model_config(cfg)
    step_flops, forward = unet_costs(model, cfg.batch_size)
    n_evals, n_sample_evals = len(train.eval_steps(cfg)), len(train.sample_eval_steps(cfg))
    calls_per_sample = cfg.sample_steps * (1 if cfg.guidance == 0 else 2)
    costs = {"train": step_flops * cfg.steps,
             "losses": forward * (cfg.eval_train_size + cfg.num_test) * n_evals,
             "sampling": forward * calls_per_sample * cfg.num_samples * n_sample_evals,
             "references": reference_flops(cfg),
             "distances": distance_flops(cfg, forward, n_evals),
             # the samples of every sample evaluation and the two references' samples, the splits
             "features": sum(feature_flops(space, cfg.image_size) * (cfg.num_samples * (n_sample_evals + 2)
                                                                     + cfg.num_train + cfg.num_test)
                             for space in cfg.feature_spaces if space != "pixels")}
    d = cfg.image_size ** 2 * 3
    host = 2 * cfg.num_samples * cfg.num_train * d  # pixel nearest neighbours of every sample
    host += sum(2 * cfg.num_samples * cfg.num_train * FEATURE_SIZES[s] for s in cfg.feature_spaces if s == "sscd")
    costs["host"] = host * n_sample_evals
    return costs


def duration(seconds):
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def matmul_rate(n=2048, repeats=10):
    """The float32 matmul rate this machine's first device reaches (FLOP/s, the median of
    `repeats` timed n x n products): the peak of --hardware cpu, and bench.py's yardstick for MFU."""
    a = jax.device_put(np.random.default_rng(0).standard_normal((n, n), np.float32))
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()  # compiled, and the first run's page faults out of the way
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        seconds.append(time.perf_counter() - start)
    return 2 * n ** 3 / float(np.median(seconds))


def peak_flops(hardware, bf16):
    if hardware == "cpu":
        return matmul_rate()
    return HARDWARE[hardware][1 if bf16 else 0] * 1e12


PARTS = ["train", "losses", "sampling", "references", "distances", "features"]  # on the device


def plan_table(named_configs, hardware="H100", devices=1, utilization=0.4, bf16=False):
    """(lines of text, {run name, and 'total' for several runs: evaluation's share of its device
    FLOPs}): one line per run and a total, with FLOPs by part, evaluation's share, projected time."""
    peak = peak_flops(hardware, bf16) * devices * utilization
    lines = [f"FLOPs (XLA cost analysis) and time on {devices} x {hardware} at {utilization:.0%} of "
             f"{peak / devices / utilization / 1e12:.1f} TFLOP/s each"
             + ("" if hardware == "cpu" else f" ({'bfloat16' if bf16 else PRECISIONS})"),
             f"{'run':<16}" + "".join(f"{p:>12}" for p in PARTS) + f"{'eval share':>12}{'host':>10}{'time':>10}"]
    total, shares = dict.fromkeys(PARTS + ["host"], 0.0), {}
    rows = [(name, run_costs(cfg)) for name, cfg in named_configs]
    for name, costs in rows:
        for part in total:
            total[part] += costs[part]
    for name, costs in rows + ([("total", total)] if len(rows) > 1 else []):
        device = sum(costs[p] for p in PARTS)
        shares[name] = 1 - costs["train"] / device
        lines.append(f"{name:<16}" + "".join(f"{costs[p]:>12.3g}" for p in PARTS)
                     + f"{shares[name]:>12.1%}{costs['host']:>10.2g}{duration(device / peak):>10}")
    return lines, shares


def print_plan(named_configs, hardware="H100", devices=1, utilization=0.4, bf16=False):
    """Print plan_table's lines."""
    print("\n".join(plan_table(named_configs, hardware, devices, utilization, bf16)[0]))


def add_arguments(parser):
    parser.add_argument("--hardware", default="H100", choices=sorted(HARDWARE) + ["cpu"])
    parser.add_argument("--devices", type=int, default=1, help="chips the run is spread over")
    parser.add_argument("--utilization", type=float, default=0.4, help="fraction of the peak reached")
    parser.add_argument("--bf16", action="store_true", help="project at the bfloat16 peak")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,
                                     epilog="Other flags are train.Config fields.")
    add_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    try:
        cfg = train.make_config(train.parse_flags(rest))
    except train.ConfigError as err:
        raise SystemExit(f"error: {err}") from None
    print_plan([("run", cfg)], args.hardware, args.devices, args.utilization, args.bf16)


if __name__ == "__main__":
    main(sys.argv[1:])
