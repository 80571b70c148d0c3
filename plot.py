"""Figures from the logs alone (log.npz, config.json, samples/*.npz), as PNG and PDF.

    python plot.py runs/demo            # one run: the paper's Figure 1, samples by step,
                                        # samples beside their nearest training images
    python plot.py sweeps/cpu-batch     # a sweep: every run as above, the axis against the
                                        # normalized step T, tau_mem against N (data axis)

Figures land in <dir>/figures/. The memorization score plotted is SSCD's (cosine > 0.6)
when the run had the SSCD weights, else the pixel-space copy fraction (ratio < 1/3); SW
and FID are drawn in every feature space the log holds, solid against the test split,
dashed against the train split.
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import metrics  # noqa: E402


def load_run(run_dir):
    """(log, config) of a run; the log is {} while the run has no evaluation."""
    run_dir = Path(run_dir)
    return metrics.load_log(run_dir), json.loads((run_dir / "config.json").read_text())


def spaces_of(log, metric):
    return sorted({k.split("_")[1] for k in log if k.startswith(metric + "_") and k.endswith("_test")})


def save(fig, out_dir, name):
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("png", "pdf"):
        fig.savefig(out_dir / f"{name}.{suffix}", dpi=130, bbox_inches="tight")
    plt.close(fig)


def mark_tau(ax, tau):
    if np.isfinite(tau):
        ax.axvline(tau, color="grey", linestyle=":", label=r"$\tau_{mem}$")


def plot_run(run_dir, out_dir=None):
    """The paper's Figure 1(b) for one run: losses, memorization, SW and FID vs step."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir or run_dir / "figures")
    log, cfg = load_run(run_dir)
    if not log:
        print(f"{run_dir}: no evaluation yet, nothing to plot")
        return
    step, tau = log["step"], metrics.memorization_time(log)
    mem = metrics.summary_keys(log)[0]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    ax = axes[0, 0]
    for split, color in (("train", "C0"), ("test", "C1")):
        ax.errorbar(step, log[f"{split}_loss"], yerr=log[f"{split}_loss_sem"], color=color, label=split, capsize=2)
    ax.set_ylabel("denoising loss")
    ax = axes[0, 1]
    ax.plot(step, log[mem], "o-", color="C3", label=mem)
    ax.set_ylabel("memorization score")
    ax.set_ylim(-0.03, 1.03)
    for ax, metric in ((axes[1, 0], "swd"), (axes[1, 1], "fid")):
        for i, space in enumerate(spaces_of(log, metric)):
            for split, style in (("test", "-"), ("train", "--")):
                ax.plot(step, log[f"{metric}_{space}_{split}"], style, color=f"C{i + 4}", label=f"{space} {split}")
        ax.set_ylabel({"swd": "sliced Wasserstein (SW2)", "fid": "FID"}[metric])
        ax.set_yscale("log")
        ax.set_xlabel("step")
    for ax in axes.flat:
        ax.set_xscale("log")
        mark_tau(ax, tau)
        ax.legend(fontsize=8)
    fig.suptitle(f"{cfg['dataset']}, N={cfg['num_train']}, C={cfg['base_channels']}, B={cfg['batch_size']}, "
                 f"lr={cfg['lr']:g}")
    save(fig, out_dir, "training")
    plot_neighbours(run_dir, out_dir)
    plot_sample_evolution(run_dir, out_dir)


def plot_neighbours(run_dir, out_dir, count=16):
    """Samples of the last evaluation (top) above their nearest training images."""
    files = sorted((Path(run_dir) / "samples").glob("step_*.npz"))
    if not files:
        return
    shown = np.load(files[-1])
    rows = [("samples", shown["samples"][:count]), ("nearest (pixels)", shown["nearest_pixels"][:count])]
    if "nearest_sscd" in shown:
        rows.append(("nearest (SSCD)", shown["nearest_sscd"][:count]))
    n = len(rows[0][1])
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 1.0), squeeze=False)
    for r, (title, images) in enumerate(rows):
        for c in range(n):
            axes[r, c].imshow(images[c], interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(title, fontsize=7)
    for c in range(n):
        axes[1, c].set_xlabel(f"{shown['ratio_pixels'][c]:.2f}", fontsize=7)  # NN1/NN2 ratio
    fig.suptitle(f"{files[-1].stem}: samples and their nearest training images "
                 f"(number: pixel ratio, a copy below 1/3)", fontsize=9)
    save(fig, Path(out_dir), "neighbours")


def plot_sample_evolution(run_dir, out_dir, count=10):
    """The same noise and labels at every evaluation (rows): novel samples turning into copies."""
    files = sorted((Path(run_dir) / "samples").glob("step_*.npz"))
    if not files:
        return
    fig, axes = plt.subplots(len(files), count, figsize=(count * 0.8, len(files) * 0.8), squeeze=False)
    for r, path in enumerate(files):
        shown = np.load(path)
        for c in range(min(count, len(shown["samples"]))):
            ax = axes[r, c]
            ax.imshow(shown["samples"][c], interpolation="nearest")
            copy = shown["ratio_pixels"][c] < metrics.COPY_RATIO_THRESHOLD
            for spine in ax.spines.values():  # red frame: a copy by the pixel criterion
                spine.set(color="red" if copy else "white", linewidth=2)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(f"{int(path.stem.split('_')[1])}", fontsize=7, rotation=0, ha="right")
    fig.suptitle("samples by step (red: copy of a training image, pixel ratio < 1/3)", fontsize=9)
    save(fig, Path(out_dir), "samples_by_step")


def normalized_step(log, cfg, mins):
    """The paper's normalized step T = step * (N_min/N) * (B/B_min) * (lr/lr_min), the mins
    being the smallest values of the sweep's axes."""
    return (log["step"] * (mins["num_train"] / cfg["num_train"]) * (cfg["batch_size"] / mins["batch_size"])
            * (cfg["lr"] / mins["lr"]))


def plot_sweep(sweep_dir):
    """Every run's Figure 1, the axis' runs against the normalized step, tau_mem vs N."""
    sweep_dir = Path(sweep_dir)
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    runs = [(name, *load_run(sweep_dir / name)) for name in meta["runs"] if (sweep_dir / name / "config.json").exists()]
    runs = [(name, log, cfg) for name, log, cfg in runs if log]  # those with an evaluation
    for name, _, _ in runs:
        plot_run(sweep_dir / name)
    if not runs:
        print(f"{sweep_dir}: no run has an evaluation yet, nothing to plot")
        return
    field, mins = meta["field"], meta["normalization"]
    mem = metrics.summary_keys(runs[0][1])[0]
    swd_space = spaces_of(runs[0][1], "swd")[0] if spaces_of(runs[0][1], "swd") else None
    panels = [("test - train loss", lambda log: log["test_loss"] - log["train_loss"]),
              (mem, lambda log: log[mem])]
    if swd_space:
        panels.append((f"SW2 {swd_space} test", lambda log: log[f"swd_{swd_space}_test"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(runs)))
    for (name, log, cfg), color in zip(runs, colors):
        t = normalized_step(log, cfg, mins)
        for ax, (title, value) in zip(axes, panels):
            ax.plot(t, value(log), "o-", ms=3, color=color, label=f"{field}={cfg[field]:g}")
    for ax, (title, _) in zip(axes, panels):
        ax.set_xscale("log")
        ax.set_xlabel("normalized step T")
        ax.set_title(title, fontsize=10)
    axes[-1].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{meta['preset']} preset, {meta['axis']} axis", fontsize=11)
    save(fig, sweep_dir / "figures", f"axis_{meta['axis']}")
    if field == "num_train":
        plot_tau_vs_n(runs, sweep_dir / "figures")


def plot_tau_vs_n(runs, out_dir):
    n = np.array([cfg["num_train"] for _, _, cfg in runs], float)
    tau = np.array([metrics.memorization_time(log) for _, log, _ in runs])
    ok = np.isfinite(tau)
    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    ax.plot(n[ok], tau[ok], "o", color="C3", label=r"$\tau_{mem}$")
    if ok.sum() >= 2:
        slope, intercept = np.polyfit(n[ok], tau[ok], 1)
        grid = np.linspace(0, n.max() * 1.05, 50)
        ax.plot(grid, slope * grid + intercept, "--", color="grey",
                label=f"linear fit: {slope:.3g} N + {intercept:.3g}")
    ax.set_xlabel("dataset size N")
    ax.set_ylabel(r"$\tau_{mem}$ (steps)")
    ax.legend(fontsize=8)
    save(fig, out_dir, "tau_vs_n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python plot.py RUN_DIR_OR_SWEEP_DIR")
    target = Path(sys.argv[1])
    if (target / "sweep.json").exists():
        plot_sweep(target)
    elif (target / "config.json").exists():
        plot_run(target)
    else:
        raise SystemExit(f"error: {target} holds neither a sweep (sweep.json) nor a run (config.json)")
    print(f"figures in {target / 'figures'}")
