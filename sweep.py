"""The paper's sweeps: one axis at a time around the defaults, each run a train.py run.

    python sweep.py --axis batch              # preset: 'paper' on an accelerator, 'cpu' otherwise
    python sweep.py --axis data --preset paper --weights_dir ~/weights
    python sweep.py --axis lr --list          # the runs of the axis, one per line
    python sweep.py --axis lr --index 2       # only run 2 (job arrays: one run per task)
    python sweep.py --axis lr --summary       # summary and figures of the runs done so far
    python sweep.py --axis data --preset paper --plan --hardware TPU-v5p --devices 16   # costs first
    python sweep.py --axis data --twin        # + each run's twin on the next N images (twins.py)

The axes and presets are study.py's. Every run of an axis gets the same budget of normalized
steps T = step * (N_min/N) * (B/B_min) * (lr/lr_min): steps = preset steps * (N/N_0) *
(B_0/B) * (lr_0/lr), the 0s being the preset's defaults (an axis may set its own steps in
study.AXES), so the runs of an axis end at the same T (and evaluate at the same T's:
first_eval is scaled alike). A run that is complete is skipped when the sweep starts again,
a killed one resumes, and a run directory that holds another config is an error. Results go
to sweeps/<preset>-<axis>/: one run directory per value, summary.npz (tau_mem, memorization
rate, best fidelity of each run, also printed as a table) and the figures of plot.py.
Any Config field can be given too, for every run of the sweep (--steps, --weights_dir, ...).
"""
import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

import files
import metrics
import plan
import study
import train


def run_configs(preset, axis, out_dir, overrides):
    """[(name, Config)] of the runs of one axis."""
    field, values, axis_fields = study.AXES[preset][axis]
    base = train.make_config({**study.PRESETS[preset], **axis_fields, **overrides})
    runs = []
    for value in values:
        cfg = dataclasses.replace(base, **{field: value})
        budget = (cfg.num_train / base.num_train) * (base.batch_size / cfg.batch_size) * (base.lr / cfg.lr)
        name = f"{axis}_{value:g}"
        runs.append((name, dataclasses.replace(cfg, steps=max(1, round(base.steps * budget)),
                                               first_eval=max(1, round(base.first_eval * budget)),
                                               run_dir=str(Path(out_dir) / name))))
    return runs


def twin_configs(runs):
    """[(name_twin, Config)]: each run's twin, trained on the next N images (twins.py)."""
    return [(f"{name}_twin", dataclasses.replace(cfg, data_offset=cfg.data_offset + cfg.num_train,
                                                 run_dir=f"{cfg.run_dir}_twin")) for name, cfg in runs]


def compare_twins(runs, out_dir, mins):
    """Each run against its twin (twins.py): a line per pair, and the axis figure."""
    import twins

    pairs = []
    for (name, cfg), (_, twin) in zip(runs, twin_configs(runs)):
        if metrics.load_log(cfg.run_dir) and metrics.load_log(twin.run_dir):
            result = twins.save_comparison(cfg.run_dir, twin.run_dir)
            pairs.append((name, dataclasses.asdict(cfg), result))
            print(f"{name} and its twin: paired similarity {result['similarity'][0]:.3f} at step "
                  f"{result['step'][0]}, {result['similarity'][-1]:.3f} at {result['step'][-1]} (chance "
                  f"{result['similarity_chance'][-1]:.3f}); copies at the end {result['mem'][-1]:.2f} and "
                  f"{result['mem_twin'][-1]:.2f}")
    if pairs:
        twins.plot_axis(pairs, mins, Path(out_dir) / "figures")


def axis_minima(preset):
    """{field: its smallest value} over the preset's axes: the N_min, B_min, lr_min of T."""
    return {field: min(values) for field, values, _ in study.AXES[preset].values()}


FIX = "give this sweep another --out"  # what a run directory holding another config suggests


def is_complete(cfg):
    """Whether cfg.run_dir holds the finished run of cfg. A run directory that holds another
    config (an earlier sweep with other flags) is an error, never a finished run to skip."""
    return train.resolve_run(dataclasses.asdict(cfg), FIX)[1] == "complete"


def summary_row(name, cfg, log, field, mins):
    """One run's row of the summary: cfg (its config as a dict) and log -> the axis value,
    tau_mem in steps and in T, copies and fidelity (metrics.summarize_run)."""
    mem_key, swd_key = metrics.summary_keys(log)
    stats = metrics.summarize_run(log, swd_key=swd_key, mem_key=mem_key)
    return dict(name=name, value=cfg[field], steps_done=int(log["step"][-1]), final_mem=float(log[mem_key][-1]),
                mem_key=mem_key, swd_key=swd_key, tau_mem_T=float(metrics.normalized_step(stats["tau_mem"], cfg, mins)),
                distance_share=metrics.distance_share(log), **stats)


def summary_lines(rows, field):
    """The summary table of a sweep's rows (summary_row), its legend, the distances' share of
    the runs' time and, on the data axis, how tau_mem grows with N (metrics.scaling_fit)."""
    lines = [f"{'run':<14}{field:>12}{'steps':>7}{'tau_mem':>9}{'in T':>8}{'tau_gen':>9}{'copy onset':>12}"
             f"{'mem rate/dec':>14}{'best SWD':>10}{'at step':>9}{'memorizer':>11}{'Gaussian':>10}{'final mem':>11}"]
    for r in rows:
        lines.append(f"{r['name']:<14}{r['value']:>12g}{r['steps_done']:>7d}{r['tau_mem']:>9.0f}{r['tau_mem_T']:>8.0f}"
                     f"{r['tau_gen']:>9.0f}{r['copy_onset']:>12.0f}{r['memorization_rate']:>14.3f}{r['best_swd']:>10.4g}"
                     f"{r['best_swd_step']:>9.0f}{r['memorizer_swd']:>11.4g}{r['gaussian_swd']:>10.4g}{r['final_mem']:>11.2f}")
    lines += (f"(tau_mem: step of the smoothed test-loss minimum; T: normalized step; tau_gen: first step within "
              f"{metrics.GENERATION_TOLERANCE:.0%} of the best SWD;\n copy onset: first step with {rows[0]['mem_key']} >= "
              f"{metrics.COPY_ONSET:g}; best SWD: {rows[0]['swd_key']}, best at or before tau_mem;\n memorizer, Gaussian: "
              f"the same of the exact references' samples, what a network scores that copies the training set, and one\n "
              f"that knows only its mean and covariance)").splitlines()
    shares = np.array([r["distance_share"] for r in rows], float)
    if np.isfinite(shares).any():
        lines.append(f"distances to the exact references: {100 * np.nanmin(shares):.1f}% to "
                     f"{100 * np.nanmax(shares):.1f}% of a run's wall time")
    if field == "num_train":
        fit = metrics.scaling_fit([r["value"] for r in rows], [r["tau_mem"] for r in rows])
        lines.append(f"tau_mem vs N: log-log slope {fit['loglog_slope']:.2f} (1 = proportional); through the origin "
                     f"tau_mem = {fit['origin_slope']:.3g} N, R^2 = {fit['origin_r2']:.2f}")
        gen = metrics.scaling_fit([r["value"] for r in rows], [r["tau_gen"] for r in rows])
        lines.append(f"tau_gen vs N: log-log slope {gen['loglog_slope']:.2f} (0 = independent of N)")
    return lines


def summarize(runs, out_dir, field, mins):
    """Print and save (summary.npz) one row per run that has evaluations; on the data axis,
    also how tau_mem grows with N (metrics.scaling_fit)."""
    rows = []
    for name, cfg in runs:
        if log := metrics.load_log(cfg.run_dir):
            rows.append(summary_row(name, dataclasses.asdict(cfg), log, field, mins))
    if not rows:
        print("no run of this sweep has an evaluation yet")
        return rows
    print("\n" + "\n".join(summary_lines(rows, field)))
    with files.atomic_write(Path(out_dir) / "summary.npz") as file:
        np.savez(file, **{k: np.array([r[k] for r in rows]) for k in rows[0]})
    return rows


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,
                                     epilog="Other flags are train.Config fields, applied to every run.")
    parser.add_argument("--axis", required=True, choices=list(study.AXES["paper"]))
    parser.add_argument("--preset", choices=sorted(study.AXES),
                        help="default: 'cpu' on a CPU backend, else 'paper'")
    parser.add_argument("--out", help="default: sweeps/<preset>-<axis>")
    parser.add_argument("--list", action="store_true", help="print the runs and stop")
    parser.add_argument("--index", type=int, help="run only this run of the axis (job arrays)")
    parser.add_argument("--summary", action="store_true", help="only summarize and plot the runs done")
    parser.add_argument("--plan", action="store_true", help="print what the runs would cost, start nothing")
    parser.add_argument("--twin", action="store_true",
                        help="also train each run's twin on the next N images, and compare them (twins.py)")
    plan.add_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    return args, train.parse_flags(rest)


def main(argv):
    args, overrides = parse_args(argv)
    import jax

    import parallel

    try:
        parallel.init_distributed()
    except parallel.AcceleratorError as err:
        raise SystemExit(f"error: {err}") from None
    train.enable_compilation_cache()
    if not args.preset and "dataset" in overrides:
        raise SystemExit("error: --dataset without --preset: name the preset the data set is for (--preset paper "
                         "for cifar10); the default preset follows the machine, not the data")
    preset = args.preset or ("cpu" if jax.default_backend() == "cpu" else "paper")
    if not args.preset:
        print(f"preset '{preset}' (the default on a {jax.default_backend()} backend; --preset to change)")
    if args.axis not in study.AXES[preset]:
        raise SystemExit(f"error: preset {preset!r} has no axis {args.axis!r}; it has {', '.join(study.AXES[preset])}")
    out_dir = Path(args.out or f"sweeps/{preset}-{args.axis}")
    try:
        runs = run_configs(preset, args.axis, out_dir, overrides)
    except train.ConfigError as err:
        raise SystemExit(f"error: {err}") from None
    field = study.AXES[preset][args.axis][0]
    everything = runs + (twin_configs(runs) if args.twin else [])  # what trains: the twins after the runs
    if args.index is not None and not 0 <= args.index < len(everything):
        raise SystemExit(f"error: --index {args.index}: the {args.axis} axis has runs 0 to {len(everything) - 1}")
    if args.plan:
        plan.print_plan(everything if args.index is None else [everything[args.index]], args.hardware, args.devices,
                        args.utilization, args.bf16)
        return
    if args.list:
        for i, (name, cfg) in enumerate(everything):
            try:
                complete = is_complete(cfg)
            except train.USER_ERRORS as err:
                raise SystemExit(f"error in {name}: {err}") from None
            print(f"{i}  {name:<14} {field}={getattr(cfg, field):g} steps={cfg.steps}  {cfg.run_dir}"
                  + ("  (complete)" if complete else ""))
        return
    mins = axis_minima(preset)
    with files.atomic_write(out_dir / "sweep.json", "w") as file:
        json.dump({"preset": preset, "axis": args.axis, "field": field, "runs": [name for name, _ in runs],
                   "normalization": mins}, file, indent=2)
    chosen = everything if args.index is None else [everything[args.index]]
    if not args.summary:
        for name, cfg in chosen:
            print(f"\n=== {name}: {field}={getattr(cfg, field):g}, {cfg.steps} steps -> {cfg.run_dir}", flush=True)
            try:
                train.train(cfg, fix=FIX)  # a complete run only says so
            except train.USER_ERRORS as err:
                raise SystemExit(f"error in {name}: {err}") from None
    if args.index is None or args.summary:
        import plot

        try:
            summarize(runs, out_dir, field, mins)
            plot.plot_sweep(out_dir)
            if args.twin:
                compare_twins(runs, out_dir, mins)
        except metrics.LogError as err:
            raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
