"""Speed of the project's train step and sampler on this machine, optionally side by side with
a PyTorch twin of the same U-Net (torch_twin.py: same architecture, same weights).

    python bench.py --preset cpu                       # train ms/step, img/s, compile, GFLOP, MFU, sampling
    python bench.py --preset cpu --batch_size 128      # any Config flags, as train.py takes them
    python bench.py --preset cpu --torch               # + the twin: eager and torch.compile, JAX/torch ratios
    python bench.py --suite --torch                    # the standard set of configs, one table
    python bench.py --suite --torch --publish          # + its record, docs/results/bench/ (report.py)
    python bench.py --suite --torch --profile /tmp/trace --publish   # + each config's profile in it
    python bench.py --preset cpu --torch --profile /tmp/trace   # + where the step's time goes, by kind of op
    python bench.py --features                         # images/s of each feature space (features.py)
    python bench.py --preset cpu --compare_xla_flags "" "--xla_cpu_use_onednn=true"   # XLA flags, one process each

What is timed:
  - train: train.make_train_step(cfg), the step train.py runs (forward, backward, Adam, EMA,
    pmapped over the local devices), fed numpy batches as the training loop feeds them;
  - sample: one Euler step of the sampler (the velocity on an eval_batch of images), times
    sample_steps, as img/s;
  - MFU: the step's FLOPs from XLA's cost model (forward and backward of the loss on the global
    batch), per second, over the float32 matmul rate measured in the same run (and over the
    datasheet peak for known GPUs);
  - --torch: the twin's eager train step (same loss: rectified-flow MSE with label dropout;
    Adam with optax's defaults; EMA) and, where it compiles, the same step with the network under
    torch.compile; the twin's Euler step. torch runs on as many threads as there are cores.

Every comparison is made in one process, the variants alternating, and reports medians (but XLA
flags, which XLA reads once per process: --compare_xla_flags runs each setting in a process of
its own, the settings alternating, and reports medians over the rounds): run it on an otherwise
idle machine (it prints how many cores other processes kept busy while it timed,
and warns above 0.2). torch is imported only with --torch.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

import convnets
import features
import files
import flow
import parallel
import plan
import profiling
import rundir
import train
import unet

# Dense float32 peak (TF32 where XLA uses it for float32 matmuls) of known accelerators, TFLOP/s.
DATASHEET_TFLOPS = {"H100": 494.7, "H200": 494.7, "A100": 156.0}

# The standard set of --suite: (name, Config flags). The C=32 config is the paper's U-Net at
# base_channels 32 (7.9M parameters); its sampler is timed on 64 images to keep the suite short.
SUITE = [
    ("cpu preset, B=16", ["--preset", "cpu"]),
    ("cpu preset, B=128", ["--preset", "cpu", "--batch_size", "128"]),
    ("C=32 (1,2,4) 32x32, B=16", ["--preset", "cpu", "--image_size", "32", "--base_channels", "32",
                                  "--channel_mult", "1,2,4", "--num_res_blocks", "3",
                                  "--attention_resolutions", "16,8", "--batch_size", "16",
                                  "--eval_batch", "64"]),
]

PROFILE_TOP = 3  # heaviest operations (and lines of code) of each kind kept in the suite's record
REPEATS = 10  # timed calls per variant, after one untimed warm-up call
PAUSE = 0.02  # seconds of idle before each timed call: the other library's worker threads go to sleep


def cores():
    return len(os.sched_getaffinity(0))


def cpu_clock():
    """(CPU seconds used by the whole machine, by this process) so far; the machine's from
    /proc/stat (Linux), None elsewhere."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        machine = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    except (OSError, ValueError, IndexError):
        machine = None
    times = os.times()
    return machine, times.user + times.system


def other_work(fn):
    """Run fn(); return (its result, the mean number of cores other processes kept busy meanwhile)."""
    (machine0, own0), start = cpu_clock(), time.perf_counter()
    result = fn()
    (machine1, own1), seconds = cpu_clock(), time.perf_counter() - start
    if machine0 is None:
        return result, float("nan")
    return result, max(0.0, (machine1 - machine0) - (own1 - own0)) / seconds


def block(out):
    """Wait for a JAX result (JAX dispatches asynchronously; torch on a CPU does not)."""
    if not type(out).__module__.startswith("torch"):
        jax.block_until_ready(out)


def first_call_seconds(fn):
    start = time.perf_counter()
    block(fn())
    return time.perf_counter() - start


def interleaved_medians(fns, repeats=REPEATS):
    """{name: fn} -> {name: median seconds}, the fns called in turn `repeats` times each, so a
    change of machine load hits all of them alike. Each fn has been called once already."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            time.sleep(PAUSE)
            start = time.perf_counter()
            block(fn())
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


# --- the JAX side ---------------------------------------------------------------------------


def fake_batch(cfg, n, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (n, cfg.image_size, cfg.image_size, 3)).astype(np.float32)
    labels = rng.integers(0, cfg.num_classes, n).astype(np.int32)
    return images, labels


def jax_train_step(cfg, state, images, labels):
    """(run, hlo_text): run() runs one real train step on this batch, the state carried from
    call to call, the batch fed as numpy, as train.py feeds it; hlo_text() is the text of the
    program it runs, as XLA compiled it."""
    step, carry = train.make_train_step(cfg), {"state": parallel.replicate(state)}
    batch = (parallel.shard(images), parallel.shard(labels), parallel.shard(np.arange(cfg.batch_size, dtype=np.int32)))

    def run():
        carry["state"], loss = step(carry["state"], *batch)
        return carry["state"]

    return run, lambda: step.lower(carry["state"], *batch).compile().as_text()


def step_flops(cfg, params, images, labels):
    """FLOPs of the forward and backward pass of the loss on the global batch, XLA's count."""
    velocity = train.velocity_fn(cfg)
    loss = lambda p, k, x, y: flow.training_loss(velocity, p, k, x, y, null_label=cfg.num_classes,
                                                 label_dropout=cfg.label_dropout)
    keys = train.example_keys(cfg, 0, np.arange(cfg.batch_size))
    return jax.jit(jax.grad(loss)).lower(params, keys, images, labels).compile().cost_analysis()["flops"]


def jax_euler_step(cfg, params, n):
    """(run, hlo_text): one Euler step of the sampler on n images (n a multiple of the device
    count), and the text of its compiled program."""
    velocity = train.velocity_fn(cfg)
    euler = parallel.data_parallel(lambda p, x, t, y: x + velocity(p, x, t, y) / cfg.sample_steps)
    params = parallel.replicate(params)
    x, labels = fake_batch(cfg, n, seed=1)
    inputs = (params, parallel.shard(x), parallel.shard(np.full(n, 0.5, np.float32)), parallel.shard(labels))
    return lambda: euler(*inputs), lambda: euler.lower(*inputs).compile().as_text()


# --- the PyTorch side (--torch) -------------------------------------------------------------


def torch_twin_steps(cfg, params, images, labels, n_sample):
    """{name: zero-argument function} for the twin: 'eager' and 'compile' train steps, 'sample'
    (one Euler step on n_sample images), with the JAX init's weights. A torch.compile failure
    is reported, not raised."""
    import torch

    import torch_twin

    torch.set_num_threads(cores())
    params = jax.tree.map(np.asarray, params)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(labels).long()

    def train_step(compile_network):
        model = torch_twin.TorchUNet(train.model_config(cfg)).load(params)
        # static shapes: dynamo keys its cache on TorchUNet.forward's code, so the suite's next
        # config would otherwise recompile it with symbolic shapes
        network = torch.compile(model, dynamic=False) if compile_network else model
        weights = list(model.parameters())
        adam = torch.optim.Adam(weights, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, foreach=True)
        ema = [w.detach().clone() for w in weights]
        generator, count = torch.Generator().manual_seed(cfg.seed), [0]

        def run():  # the twin of train.make_train_step's step, rectified flow as in flow.py
            noise = torch.randn(x.shape, generator=generator)
            t = torch.rand(len(x), generator=generator)
            drop = torch.rand(len(x), generator=generator) < cfg.label_dropout
            labels_in = torch.where(drop, cfg.num_classes, y)
            tb = t[:, None, None, None]
            v = network(tb * x + (1 - tb) * noise, t, labels_in)
            loss = ((v - (x - noise)) ** 2).mean()
            adam.zero_grad(set_to_none=True)
            loss.backward()
            adam.step()
            decay = min(cfg.ema_decay, (1 + count[0]) / (10 + count[0]))
            torch._foreach_lerp_(ema, [w.detach() for w in weights], 1 - decay)
            count[0] += 1
            return loss

        return run

    steps = {"eager": train_step(False)}
    try:
        compiled = train_step(True)
        steps["compile"] = compiled
        steps["compile first call"] = first_call_seconds(compiled)
    except Exception as err:  # inductor needs a C++ compiler, and not every op compiles
        steps.pop("compile", None)
        steps["compile error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"

    model = torch_twin.TorchUNet(train.model_config(cfg)).load(params).eval()
    xs, ys = fake_batch(cfg, n_sample, seed=1)
    xs = torch.from_numpy(xs).permute(0, 3, 1, 2).contiguous()
    ys, ts = torch.from_numpy(ys).long(), torch.full((n_sample,), 0.5)

    def sample():
        with torch.no_grad():
            return xs + model(xs, ts, ys) / cfg.sample_steps

    steps["sample"] = sample
    return steps


# --- one config -----------------------------------------------------------------------------


def bench(cfg, with_torch, peak, profile_dir=None):
    """Measure one config; print its report; return its numbers as a dict."""
    n_dev, device = jax.device_count(), jax.devices()[0]
    b = cfg.batch_size
    n_sample = -(-cfg.eval_batch // n_dev) * n_dev
    images, labels = fake_batch(cfg, b)
    state = train.init_state(cfg)
    jax_train, jax_hlo_text = jax_train_step(cfg, state, images, labels)
    compile_s = first_call_seconds(jax_train)
    jax_sample, sample_hlo_text = jax_euler_step(cfg, state["ema"], n_sample)
    first_call_seconds(jax_sample)
    flops = step_flops(cfg, state["params"], images, labels)
    fns = {"train": jax_train, "sample": jax_sample}
    twin = {}
    if with_torch:
        twin = torch_twin_steps(cfg, state["params"], images, labels, n_sample)
        for name in ("eager", "compile", "sample"):
            if name in twin:
                first_call_seconds(twin[name])
                fns[f"torch {name}"] = twin[name]
    t, others = other_work(lambda: interleaved_medians(fns))
    if others > 0.2:
        print(f"warning: other processes kept {others:.1f} cores busy during the timing: every time below is "
              f"inflated, torch's most (its OpenMP threads wait for each other when one is descheduled)")

    params = unet.count_params(state["params"])
    kind = next((k for k in DATASHEET_TFLOPS if k in device.device_kind), None)
    mfu = flops / t["train"] / (n_dev * peak)
    print(f"model   C={cfg.base_channels} mult={cfg.channel_mult} blocks={cfg.num_res_blocks} "
          f"attention={cfg.attention_resolutions} {cfg.image_size}x{cfg.image_size}: {params:,} params; "
          f"{n_dev} x {device.device_kind} ({device.platform}); other work {others:.2f} cores; "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    print(f"train   batch {b}: {t['train'] * 1e3:.1f} ms/step, {b / t['train']:.1f} img/s, first step "
          f"(compilation) {compile_s:.1f} s, {flops / 1e9:.2f} GFLOP/step")
    print(f"sample  batch {n_sample}: {n_sample / (t['sample'] * cfg.sample_steps):.3g} img/s at "
          f"{cfg.sample_steps} Euler steps ({t['sample'] * 1e3:.1f} ms per step)")
    print(f"MFU     {100 * mfu:.1f}% of the measured float32 matmul rate ({peak / 1e9:.0f} GFLOP/s per device)"
          + (f", {100 * flops / t['train'] / (n_dev * DATASHEET_TFLOPS[kind] * 1e12):.1f}% of the {kind} "
             f"datasheet ({DATASHEET_TFLOPS[kind]} TFLOP/s)" if kind else ""))
    row = {"train_ms": t["train"] * 1e3, "img_s": b / t["train"], "compile_s": compile_s, "gflop": flops / 1e9,
           "mfu": mfu, "sample_img_s": n_sample / (t["sample"] * cfg.sample_steps), "n_sample": n_sample}
    if with_torch:
        import torch

        line = f"torch   {torch.__version__}, {torch.get_num_threads()} threads: eager {t['torch eager'] * 1e3:.1f} ms/step"
        row["eager_ms"] = t["torch eager"] * 1e3
        if "torch compile" in t:
            row["compile_ms"] = t["torch compile"] * 1e3
            line += f", torch.compile {row['compile_ms']:.1f} ms/step (first call {twin['compile first call']:.0f} s)"
        else:
            line += f", torch.compile failed ({twin['compile error']})"
        row["torch_sample_img_s"] = n_sample / (t["torch sample"] * cfg.sample_steps)
        print(line + f"; sampling {row['torch_sample_img_s']:.3g} img/s")
        print(f"ratio   JAX / torch eager: train {row['train_ms'] / row['eager_ms']:.2f}x"
              + (f", JAX / torch.compile: train {row['train_ms'] / row['compile_ms']:.2f}x" if "compile_ms" in row else "")
              + f"; sampling time JAX / torch {t['sample'] / t['torch sample']:.2f}x")
    if profile_dir:
        row["profile"] = {
            "train": profile(jax_train, jax_hlo_text(), twin.get("eager"), Path(profile_dir) / "train", "train step"),
            "sample": profile(jax_sample, sample_hlo_text(), twin.get("sample"), Path(profile_dir) / "sample",
                              f"sampler's Euler step on {n_sample} images")}
        print(f"\nthe JAX traces are in {profile_dir}/train and /sample: open their perfetto_trace.json.gz in "
              f"ui.perfetto.dev")
    return row


def profile(jax_run, hlo_text, torch_run, trace_dir, what):
    """Where the time of a JAX step (and of its torch twin, where given) goes; prints it and
    returns what the suite's record keeps: the kinds, the heaviest operations and lines."""
    jax_kinds, jax_ops = profiling.jax_profile(jax_run, hlo_text, trace_dir)
    torch_kinds, torch_ops = profiling.torch_profile(torch_run) if torch_run else (None, None)
    profiling.print_profile(jax_kinds, jax_ops, torch_kinds, torch_ops, what=what)
    kept = {"jax": jax_kinds, "jax_top": profiling.heaviest_by_kind(jax_ops, PROFILE_TOP),
            "jax_lines": profiling.heaviest_by_kind(profiling.by_source(jax_ops), PROFILE_TOP)}
    if torch_run:
        kept.update(torch=torch_kinds, torch_top=profiling.heaviest_by_kind(torch_ops, PROFILE_TOP))
    return kept


def feature_spaces(n_images=64, image_size=32, batch=64):
    """Images/s of each feature space's network on random images, spread over every local
    device; a space whose weights are not downloaded runs with random weights of its shapes."""
    devices = jax.local_devices()
    print(f"{len(devices)} {devices[0].platform} device(s) ({devices[0].device_kind}); {n_images} random "
          f"{image_size}x{image_size} uint8 images, {batch} per batch over all devices")
    images = np.random.default_rng(0).integers(0, 256, (n_images, image_size, image_size, 3), np.uint8)
    present = features.available_spaces()
    for space in features.SPACES:
        random = space in features.WEIGHTS and space not in present
        extract = features.feature_extractor(space, map_batches=parallel.over_devices(batch),
                                             torch_state=convnets.random_torch_state(space) if random else None)
        compile_seconds = first_call_seconds(lambda: extract(images[:batch]))  # compiles for the batch shape
        start = time.perf_counter()
        dim = extract(images).shape[1]
        seconds = time.perf_counter() - start
        weights = "RANDOM weights (none downloaded)" if random else \
            "published weights" if space in features.WEIGHTS else "no weights"
        print(f"{space:>9}: {n_images / seconds:8.1f} images/s  (D={dim}, {weights}, first call "
              f"incl. compile {compile_seconds:.1f} s)")


def compare_xla_flags(flag_sets, bench_flags, rounds=3):
    """The train step and the sampler under each XLA_FLAGS setting, each run in a process of its
    own (XLA reads its flags once, when the first computation starts), the settings alternating
    for `rounds` rounds; prints the median ms/step and img/s of each, and their ratio to the
    first setting's. An empty setting is the default: parallel.py's convolution flag alone."""
    timed = {flags: [] for flags in flag_sets}
    for round_ in range(rounds):
        for flags in flag_sets:
            out = subprocess.run([sys.executable, __file__, *bench_flags], env=dict(os.environ, XLA_FLAGS=flags),
                                 capture_output=True, text=True)
            train_ms = re.search(r"^train .*?: ([\d.]+) ms/step", out.stdout, re.M)
            sample = re.search(r"^sample .*?: ([\d.]+) img/s", out.stdout, re.M)
            if out.returncode or not train_ms or not sample:
                raise SystemExit(f"error: the bench with XLA_FLAGS={flags!r} failed: "
                                 f"{(out.stderr.strip() or out.stdout.strip())[-500:]}")
            timed[flags].append((float(train_ms[1]), float(sample[1])))
            print(f"round {round_ + 1}/{rounds}: {train_ms[1]} ms/step, {sample[1]} img/s  XLA_FLAGS={flags!r}",
                  flush=True)
    base = np.median(timed[flag_sets[0]], axis=0)
    print(f"\nmedians of {rounds} processes each ({' '.join(bench_flags)}); ratios to the first setting")
    print("| XLA_FLAGS | train ms/step | ratio | sample img/s | ratio |\n|---|---|---|---|---|")
    for flags, values in timed.items():
        train_ms, sample = np.median(values, axis=0)
        print(f"| {flags or '(default)'} | {train_ms:.1f} | {train_ms / base[0]:.2f} | {sample:.3g} | "
              f"{sample / base[1]:.2f} |")


def suite(with_torch, peak, publish_to=None, profile_dir=None):
    """Bench every config of SUITE and print one table; with profile_dir, profile each config too
    (its trace in profile_dir/<number>); with publish_to, also write it all there as a results
    record (report.py puts it in docs/RESULTS.md)."""
    rows = []
    for number, (name, flags) in enumerate(SUITE):
        print(f"\n=== {name}: {' '.join(flags)}")
        rows.append((name, bench(train.Config(**train.parse_flags(flags)), with_torch, peak,
                                 profile_dir and Path(profile_dir) / str(number))))
    columns = ["config", "JAX ms", "img/s", "GFLOP", "MFU", "sample img/s"]
    if with_torch:
        columns += ["torch eager ms", "torch.compile ms", "JAX/eager", "JAX/compile", "torch sample img/s"]
    table = []
    for name, r in rows:
        line = [name, f"{r['train_ms']:.1f}", f"{r['img_s']:.1f}", f"{r['gflop']:.2f}", f"{100 * r['mfu']:.1f}%",
                f"{r['sample_img_s']:.3g}"]
        if with_torch:
            compiled = "compile_ms" in r
            line += [f"{r['eager_ms']:.1f}", f"{r['compile_ms']:.1f}" if compiled else "failed",
                     f"{r['train_ms'] / r['eager_ms']:.2f}", f"{r['train_ms'] / r['compile_ms']:.2f}" if compiled else "-",
                     f"{r['torch_sample_img_s']:.3g}"]
        table.append(line)
    print(f"\nmatmul rate {peak / 1e9:.0f} GFLOP/s; ms per train step (forward, backward, Adam, EMA), medians")
    for line in [columns, ["---"] * len(columns), *table]:
        print("| " + " | ".join(line) + " |")
    if publish_to:
        versions = {"jax": jax.__version__, "numpy": np.__version__, "devices": f"{jax.device_count()} x "
                    f"{jax.devices()[0].device_kind} ({jax.default_backend()})"}
        if with_torch:
            import torch

            versions["torch"] = torch.__version__
        record = {"kind": "bench", "command": "python bench.py --suite" + (" --torch" if with_torch else "")
                  + (" --profile DIR" if profile_dir else ""),
                  "matmul_gflops": peak / 1e9, "columns": columns, "rows": table,
                  "profiles": {name: r["profile"] for name, r in rows if "profile" in r},
                  "ran_on": {**rundir.machine(), **versions}}
        with files.atomic_write(Path(publish_to) / "record.json", "w") as file:
            file.write(json.dumps(record, indent=1) + "\n")
        print(f"published {publish_to}")


def main(argv):
    if "-h" in argv or "--help" in argv:
        print(__doc__ + "\n" + train.flag_help())
        return
    parallel.use_fast_cpu_convolutions()  # as train.py and sweep.py run
    if argv == ["--features"]:
        feature_spaces()
        return
    if "--compare_xla_flags" in argv:
        at = argv.index("--compare_xla_flags")
        if at + 1 == len(argv):
            raise SystemExit('error: --compare_xla_flags needs the settings to compare, for example "" '
                             '"--xla_cpu_use_onednn=true" ("" is the default)')
        compare_xla_flags(argv[at + 1:], argv[:at])
        return
    with_torch, run_suite, publish = "--torch" in argv, "--suite" in argv, "--publish" in argv
    profile_dir = None
    if "--profile" in argv:
        at = argv.index("--profile")
        if at + 1 == len(argv):
            raise SystemExit("error: --profile needs a directory to write the trace to")
        profile_dir, argv = argv[at + 1], argv[:at] + argv[at + 2:]
    flags = [a for a in argv if a not in ("--torch", "--suite", "--publish")]
    peak = plan.matmul_rate()
    if run_suite:
        if flags:
            raise SystemExit("error: --suite runs its own configs; it takes no other flags but --torch, --profile DIR "
                             "and --publish")
        suite(with_torch, peak, Path(__file__).resolve().parent / "docs" / "results" / "bench" if publish else None,
              profile_dir)
    elif publish:
        raise SystemExit("error: --publish publishes the suite: python bench.py --suite --torch --publish")
    else:
        try:
            cfg = train.Config(**train.parse_flags(flags))
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        bench(cfg, with_torch, peak, profile_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
