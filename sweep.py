"""The paper's sweeps: one axis at a time around the defaults, each run a train.py run.

    python sweep.py --axis batch              # preset: 'paper' on an accelerator, 'cpu' otherwise
    python sweep.py --axis data --preset paper --weights_dir ~/weights
    python sweep.py --axis lr --list          # the runs of the axis, one per line
    python sweep.py --axis lr --index 2       # only run 2 (job arrays: one run per task)
    python sweep.py --axis lr --summary       # summary and figures of the runs done so far

Axes (the paper's values; defaults in the middle of the pack are N=2048, C=128 (92M
parameters), B=16, lr=1e-4):
    data   num_train      2048, 4096, 8192, 16384
    model  base_channels  16, 32, 64, 128, 192  (2.9M, 7.9M, 25.8M, 92.7M, 201.3M parameters)
    batch  batch_size     16, 32, 64, 128
    lr     lr             1e-5, 5e-5, 1e-4, 4e-4
The 'cpu' preset scales them to the built-in data and a small U-Net (train.PRESETS).

Every run gets the same budget of normalized steps T = step * (N_min/N) * (B/B_min) *
(lr/lr_min) (PAPER.md): steps = preset steps * (N/N_0) * (B_0/B) * (lr_0/lr), the 0s being
the preset's defaults, so the runs of an axis end at the same T (and evaluate at the same
T's: first_eval is scaled alike). A run that is complete is
skipped when the sweep starts again, and a killed one resumes. Results go to
sweeps/<preset>-<axis>/: one run directory per value, summary.npz (tau_mem, memorization
rate, best fidelity of each run, also printed as a table) and the figures of plot.py.
Any Config field can be overridden for every run of the sweep (--steps, --weights_dir, ...).
"""
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

import metrics
import train

AXES = {
    "paper": {"data": ("num_train", (2048, 4096, 8192, 16384)),
              "model": ("base_channels", (16, 32, 64, 128, 192)),
              "batch": ("batch_size", (16, 32, 64, 128)),
              "lr": ("lr", (1e-5, 5e-5, 1e-4, 4e-4))},
    "cpu": {"data": ("num_train", (16, 32, 64, 128)),
            "model": ("base_channels", (8, 16, 24, 32)),
            "batch": ("batch_size", (16, 32, 64, 128)),
            "lr": ("lr", (7.5e-4, 1.5e-3, 3e-3, 6e-3))},
}


def run_configs(preset, axis, out_dir, overrides):
    """[(name, Config)] of the runs of one axis."""
    field, values = AXES[preset][axis]
    base = train.Config(**{**train.PRESETS[preset], **overrides})
    runs = []
    for value in values:
        cfg = dataclasses.replace(base, **{field: value})
        budget = (cfg.num_train / base.num_train) * (base.batch_size / cfg.batch_size) * (base.lr / cfg.lr)
        name = f"{axis}_{value:g}"
        runs.append((name, dataclasses.replace(cfg, steps=max(1, round(base.steps * budget)),
                                               first_eval=max(1, round(base.first_eval * budget)),
                                               run_dir=str(Path(out_dir) / name))))
    return runs


def is_complete(cfg):
    log = Path(cfg.run_dir) / "log.npz"
    return log.exists() and int(np.load(log)["step"][-1]) >= cfg.steps


def summarize(runs, out_dir, field):
    rows = []
    for name, cfg in runs:
        path = Path(cfg.run_dir) / "log.npz"
        if not path.exists():
            continue
        log = dict(np.load(path))
        mem_key, swd_key = metrics.summary_keys(log)
        stats = metrics.summarize_run(log, swd_key=swd_key, mem_key=mem_key)
        rows.append(dict(name=name, value=getattr(cfg, field), steps_done=int(log["step"][-1]),
                         final_mem=float(log[mem_key][-1]), mem_key=mem_key, swd_key=swd_key, **stats))
    if not rows:
        return rows
    print(f"\n{'run':<14}{field:>14}{'steps':>9}{'tau_mem':>10}{'mem rate/dec':>14}{'best SWD':>11}"
          f"{'at step':>9}{'final mem':>11}")
    for r in rows:
        print(f"{r['name']:<14}{r['value']:>14g}{r['steps_done']:>9d}{r['tau_mem']:>10.0f}"
              f"{r['memorization_rate']:>14.3f}{r['best_swd']:>11.4g}{r['best_swd_step']:>9.0f}{r['final_mem']:>11.2f}")
    print(f"(memorization score: {rows[0]['mem_key']}, fidelity: {rows[0]['swd_key']})")
    tmp = Path(out_dir) / "summary.tmp.npz"
    np.savez(tmp, **{k: np.array([r[k] for r in rows]) for k in rows[0]})
    os.replace(tmp, Path(out_dir) / "summary.npz")
    return rows


def main(argv):
    args = {"axis": None, "preset": None, "out": None}
    flags = {"--list": False, "--summary": False}
    index, rest, i = None, [], 0
    while i < len(argv):
        name = argv[i]
        if name in flags:
            flags[name], i = True, i + 1
        elif name[2:] in args and i + 1 < len(argv):
            args[name[2:]], i = argv[i + 1], i + 2
        elif name == "--index" and i + 1 < len(argv):
            index, i = int(argv[i + 1]), i + 2
        else:
            rest, i = rest + argv[i:i + 2], i + 2
    if args["axis"] not in AXES["paper"]:
        raise SystemExit(f"error: --axis must be one of {', '.join(AXES['paper'])}")
    import jax

    train.init_distributed()
    train.enable_compilation_cache()
    preset = args["preset"] or ("cpu" if jax.default_backend() == "cpu" else "paper")
    if preset not in AXES:
        raise SystemExit(f"error: unknown preset {preset!r}; choose from {sorted(AXES)}")
    if not args["preset"]:
        print(f"preset '{preset}' (the default on a {jax.default_backend()} backend; --preset to change)")
    out_dir = Path(args["out"] or f"sweeps/{preset}-{args['axis']}")
    runs = run_configs(preset, args["axis"], out_dir, train.parse_flags(rest))
    field = AXES[preset][args["axis"]][0]
    if flags["--list"]:
        for i, (name, cfg) in enumerate(runs):
            print(f"{i}  {name:<14} {field}={getattr(cfg, field):g} steps={cfg.steps}  {cfg.run_dir}"
                  + ("  (complete)" if is_complete(cfg) else ""))
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    mins = {f: min(v) for f, v in AXES[preset].values()}  # the smallest value of each axis
    (out_dir / "sweep.json").write_text(json.dumps({"preset": preset, "axis": args["axis"], "field": field,
                                                    "runs": [name for name, _ in runs],
                                                    "normalization": mins}, indent=2) + "\n")
    chosen = runs if index is None else [runs[index]]
    if not flags["--summary"]:
        for name, cfg in chosen:
            if is_complete(cfg):
                print(f"{name}: complete, skipped")
                continue
            print(f"\n=== {name}: {field}={getattr(cfg, field):g}, {cfg.steps} steps -> {cfg.run_dir}", flush=True)
            try:
                train.train(cfg)
            except train.USER_ERRORS as err:
                raise SystemExit(f"error in {name}: {err}") from None
    if index is None or flags["--summary"]:
        summarize(runs, out_dir, field)
        import plot

        plot.plot_sweep(out_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
