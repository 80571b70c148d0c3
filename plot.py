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
import zipfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import metrics  # noqa: E402


def load_run(run_dir):
    """(log, config) of a run; the log is {} while the run has no evaluation."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise metrics.LogError(f"{run_dir / 'config.json'} is unreadable ({type(err).__name__}); the run's "
                               f"config is needed to plot it") from None
    return metrics.load_log(run_dir), config


def spaces_of(log, metric):
    """The feature spaces in which the log holds `metric` ('swd' or 'fid'): swd_<space>_test."""
    return sorted({k.split("_")[1] for k in log if k.startswith(metric + "_") and k.endswith("_test")} - {"count"})


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
    draw_floors(ax, log)
    ax.set_ylabel("denoising loss")
    ax = axes[0, 1]
    ax.plot(metrics.steps_of(log, mem), log[mem], "o-", color="C3", label=mem)
    ax.set_ylabel("memorization score")
    ax.set_ylim(-0.03, 1.03)
    for ax, metric in ((axes[1, 0], "swd"), (axes[1, 1], "fid")):
        for i, space in enumerate(spaces_of(log, metric)):
            for split, style in (("test", "-"), ("train", "--")):
                key = f"{metric}_{space}_{split}"
                ax.plot(metrics.steps_of(log, key), log[key], style, color=f"C{i + 4}", label=f"{space} {split}")
            for reference, style in (("memorizer", ":"), ("gaussian", "-.")):  # yardsticks (evaluate.py)
                key = f"{reference}_{metric}_{space}_test"
                if key in log:
                    ax.axhline(float(log[key][0]), color=f"C{i + 4}", linestyle=style, linewidth=1,
                               label=f"{space} test: {reference}'s samples")
        ax.set_ylabel({"swd": "sliced Wasserstein (SW2)", "fid": "FID"}[metric])
        ax.set_yscale("log")
        ax.set_xlabel("step")
    for ax in axes.flat:
        ax.set_xscale("log")
        mark_tau(ax, tau)
    for ax in axes[0]:
        ax.legend(fontsize=8)
    # the two lower panels draw the same lines: one legend for both, below the figure
    fig.legend(*axes[1, 0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.03),
               ncol=3, fontsize=8)
    fig.suptitle(f"{cfg['dataset']}, N={cfg['num_train']}, C={cfg['base_channels']}, B={cfg['batch_size']}, "
                 f"lr={cfg['lr']:g}")
    save(fig, out_dir, "training")
    plot_gap_by_noise(log, cfg, tau, out_dir)
    plot_distances(log, cfg, tau, out_dir)
    plot_neighbours(run_dir, out_dir)
    plot_sample_evolution(run_dir, out_dir)


def draw_floors(ax, log):
    """The exact references' losses as horizontal lines: the memorizer's train loss is the
    lowest any network reaches; the Gaussian fit's test loss is what generalizing to second
    moments gives. References far above the network's losses are named, not drawn."""
    if "memorizer_train_loss" not in log:
        return
    top = 1.5 * max(np.max(log["train_loss"]), np.max(log["test_loss"]))
    for key, style in (("memorizer_train_loss", ":"), ("memorizer_test_loss", ":"),
                       ("gaussian_train_loss", "-."), ("gaussian_test_loss", "-.")):
        value = float(log[key][0])
        color = "C0" if "_train_" in key else "C1"
        label = key.replace("_loss", "").replace("_", " ")
        if value <= top:
            ax.axhline(value, color=color, linestyle=style, linewidth=1, label=f"{label} {value:.3g}")
        else:
            ax.plot([], [], " ", label=f"{label} {value:.3g} (off scale)")
    ax.set_yscale("log")


def plot_gap_by_noise(log, cfg, tau, out_dir):
    """Where in noise the test loss leaves the train loss: the gap per noise bin and step (heat
    map), and the normalized gap, (test - train) / (memorizer test - memorizer train), per
    bin and over the noisier half (the number tau_mem is read from)."""
    if "gap_normalized_bins" not in log:
        return
    step, bins = log["step"], log["test_loss_bins"].shape[1]
    fig, (ax_map, ax_norm) = plt.subplots(1, 2, figsize=(11, 3.8))
    gap = (log["test_loss_bins"] - log["train_loss_bins"]).T  # (bins, evaluations)
    edges = np.concatenate([[step[0] / 1.1], np.sqrt(step[1:] * step[:-1]), [step[-1] * 1.1]])
    mesh = ax_map.pcolormesh(edges, np.linspace(0, 1, bins + 1), gap, cmap="magma", shading="flat")
    fig.colorbar(mesh, ax=ax_map, label="test - train loss")
    ax_map.set(xscale="log", xlabel="step", ylabel="t (0: noise, 1: data)", title="loss gap by noise level")
    colors = plt.cm.coolwarm(np.linspace(0, 1, bins))
    for k in range(bins):
        ax_norm.plot(step, log["gap_normalized_bins"][:, k], color=colors[k], linewidth=1,
                     label=f"t in [{k / bins:.1f}, {(k + 1) / bins:.1f})" if k in (0, bins // 2 - 1, bins - 1) else None)
    ax_norm.plot(step, log["gap_normalized"], "k-o", ms=3, label="noisier half (t < 1/2)")
    for ax in (ax_map, ax_norm):
        mark_tau(ax, tau)
    ax_norm.set(xscale="log", xlabel="step", ylabel="fraction of the memorizer's gap", title="normalized gap")
    ax_norm.legend(fontsize=7)
    fig.suptitle(f"N={cfg['num_train']}, C={cfg['base_channels']}, B={cfg['batch_size']}, lr={cfg['lr']:g}", fontsize=10)
    save(fig, out_dir, "gap_by_noise")


def sample_files(run_dir):
    """[(path, arrays)] of the run's stored samples (samples/step_*.npz), in step order; a
    damaged file (a run killed as it wrote, before atomic writes) is skipped with a line."""
    found = []
    for path in sorted((Path(run_dir) / "samples").glob("step_*.npz")):
        try:
            with np.load(path) as f:
                found.append((path, dict(f)))
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
            print(f"{path} is damaged ({type(err).__name__}), left out of the figures")
    return found


def plot_distances(log, cfg, tau, out_dir):
    """What the network has learnt: per exact reference, the relative distance of its velocity
    to the reference's, |v - v_ref|^2 / |v_ref|^2, through training, one line per noise bin;
    past the last step, the other references' distances to it, per bin in the bin's colour."""
    names = [name for name in metrics.REFERENCES if f"distance_{name}_bins" in log]
    if not names:
        return
    step, bins = log["step"], log[f"distance_{names[0]}_bins"].shape[1]
    colors = plt.cm.coolwarm(np.linspace(0, 1, bins))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        for k in range(bins):
            ax.plot(step, log[f"distance_{name}_bins"][:, k], color=colors[k], linewidth=1.2,
                    label=f"t in [{k / bins:.1f}, {(k + 1) / bins:.1f})" if k in (0, bins // 2, bins - 1) else None)
        for other, (marker, x) in zip([n for n in names if n != name], (("<", 1.15), ("s", 1.35))):
            key = f"{other}_distance_{name}_bins"
            if key in log:  # the other references in the network's place, per bin (its colour), past the end
                ax.scatter(np.full(bins, step[-1] * x), log[key][0], c=colors, marker=marker, s=16,
                           label=f"the {metrics.REFERENCES[other]}'s")
        mark_tau(ax, tau)
        ax.set(xscale="log", yscale="log", xlabel="step", title=f"to the {metrics.REFERENCES[name]}")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel(r"$|v - v_{ref}|^2 / |v_{ref}|^2$ (held-out inputs)")
    fig.suptitle(f"what the network has learnt: N={cfg['num_train']}, C={cfg['base_channels']}, "
                 f"B={cfg['batch_size']}, lr={cfg['lr']:g}", fontsize=10)
    save(fig, out_dir, "distances")


def plot_neighbours(run_dir, out_dir, count=16):
    """Samples of the last evaluation (top) above their nearest training images."""
    files = sample_files(run_dir)
    if not files:
        return
    shown = files[-1][1]
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
    fig.suptitle(f"{files[-1][0].stem}: samples and their nearest training images "
                 f"(number: pixel ratio, a copy below 1/3)", fontsize=9)
    save(fig, Path(out_dir), "neighbours")


def plot_sample_evolution(run_dir, out_dir, count=10):
    """The same noise and labels at every evaluation (rows): novel samples turning into copies."""
    files = sample_files(run_dir)
    if not files:
        return
    fig, axes = plt.subplots(len(files), count, figsize=(count * 0.8, len(files) * 0.8), squeeze=False)
    for r, (path, shown) in enumerate(files):
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


def plot_sweep(sweep_dir):
    """Every run's figures; the axis' runs against the normalized step T (normalized gap,
    memorization score, SW2); the loss gap by noise level of every run; the distances to the
    exact references by noise band; tau_mem vs N."""
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
    mem, swd = metrics.summary_keys(runs[0][1])
    panels = [("gap_normalized", "normalized gap (t < 1/2)"), (mem, f"memorization score ({mem})"),
              (swd, f"SW2 ({swd})")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(runs)))
    for (name, log, cfg), color in zip(runs, colors):
        tau = metrics.normalized_step(metrics.memorization_time(log), cfg, mins)
        for ax, (key, _) in zip(axes, panels):
            if key in log:
                ax.plot(metrics.normalized_step(metrics.steps_of(log, key), cfg, mins), log[key], "o-", ms=3, color=color,
                        label=f"{field}={cfg[field]:g}")
            if np.isfinite(tau):
                ax.axvline(tau, color=color, linestyle=":", linewidth=1)
        if f"memorizer_{swd}" in log:  # what copying the training set scores
            axes[2].axhline(float(log[f"memorizer_{swd}"][0]), color=color, linestyle="--", linewidth=1)
    for ax, (_, title) in zip(axes, panels):
        ax.set(xscale="log", xlabel="normalized step T", title=title)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{meta['preset']} preset, {meta['axis']} axis (dotted: tau_mem; dashed: SW2 of the memorizer's samples)", fontsize=11)
    save(fig, sweep_dir / "figures", f"axis_{meta['axis']}")
    plot_sweep_gaps(runs, field, mins, sweep_dir / "figures", meta["axis"])
    plot_sweep_distances(runs, field, mins, sweep_dir / "figures", meta["axis"])
    if field == "num_train":
        plot_tau_vs_n(runs, sweep_dir / "figures")


def plot_sweep_gaps(runs, field, mins, out_dir, axis):
    """The test - train loss gap by noise level against T, one heat map per run."""
    runs = [(name, log, cfg) for name, log, cfg in runs if "test_loss_bins" in log]
    fig, axes = plt.subplots(1, len(runs), figsize=(3.4 * len(runs), 3.2), squeeze=False, sharey=True)
    top = max(np.max(log["test_loss_bins"] - log["train_loss_bins"]) for _, log, _ in runs)
    for ax, (name, log, cfg) in zip(axes[0], runs):
        t = metrics.normalized_step(log["step"], cfg, mins)
        edges = np.concatenate([[t[0] / 1.1], np.sqrt(t[1:] * t[:-1]), [t[-1] * 1.1]])
        bins = log["test_loss_bins"].shape[1]
        mesh = ax.pcolormesh(edges, np.linspace(0, 1, bins + 1), (log["test_loss_bins"] - log["train_loss_bins"]).T,
                             cmap="magma", vmin=0, vmax=top, shading="flat")
        ax.set(xscale="log", xlabel="normalized step T", title=f"{field}={cfg[field]:g}")
    axes[0, 0].set_ylabel("t (0: noise, 1: data)")
    fig.colorbar(mesh, ax=axes[0, -1], label="test - train loss")
    save(fig, out_dir, f"gap_by_noise_{axis}")


def plot_sweep_distances(runs, field, mins, out_dir, axis):
    """What each run has learnt against T: its distance to each exact reference, averaged over
    the bins of a noise band (metrics.NOISE_BANDS), one row per band, one column per run."""
    runs = [(name, log, cfg) for name, log, cfg in runs if "distance_memorizer_bins" in log]
    if not runs:
        return
    bands = list(metrics.NOISE_BANDS)
    fig, axes = plt.subplots(len(bands), len(runs), figsize=(3.2 * len(runs), 2.6 * len(bands)), squeeze=False,
                             sharex="col", sharey="row")
    for column, (name, log, cfg) in enumerate(runs):
        t = metrics.normalized_step(log["step"], cfg, mins)
        tau = metrics.normalized_step(metrics.memorization_time(log), cfg, mins)
        for row, band in enumerate(bands):
            ax = axes[row, column]
            for reference, distance in metrics.distances_in_band(log, band).items():
                ax.plot(t, distance, "-", color=f"C{list(metrics.REFERENCES).index(reference)}",
                        label=f"to the {metrics.REFERENCES[reference]}")
            mark_tau(ax, tau)
            ax.set(xscale="log", yscale="log")
        axes[0, column].set_title(f"{field}={cfg[field]:g}")
        axes[-1, column].set_xlabel("normalized step T")
    for row, (band, bins) in enumerate(metrics.NOISE_BANDS.items()):
        axes[row, 0].set_ylabel(f"{band}: t in [{bins.start / 10:.1f}, {bins.stop / 10:.1f})")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(r"$|v - v_{ref}|^2 / |v_{ref}|^2$ on held-out inputs, by noise band (t = 0: noise)", fontsize=10)
    save(fig, out_dir, f"distances_{axis}")


def plot_tau_vs_n(runs, out_dir):
    """tau_mem against N on log-log axes: the fitted power law, and the best line through the
    origin (proportional, slope 1 on these axes) with its R^2."""
    n = np.array([cfg["num_train"] for _, _, cfg in runs], float)
    tau = np.array([metrics.memorization_time(log) for _, log, _ in runs])
    fit = metrics.scaling_fit(n, tau)
    ok = np.isfinite(tau) & (tau > 0)
    if not ok.any():  # no run has memorized yet: nothing to put on log axes
        print("tau_vs_n: no run has a tau_mem yet, no figure")
        return
    fig, ax = plt.subplots(figsize=(4.8, 3.8))
    ax.plot(n[ok], tau[ok], "o", color="C3", label=r"$\tau_{mem}$")
    if np.isfinite(fit["origin_slope"]):
        grid = np.geomspace(n[ok].min() / 1.2, n[ok].max() * 1.2, 50)
        ax.plot(grid, fit["loglog_prefactor"] * grid ** fit["loglog_slope"], "-", color="C3", alpha=0.5,
                label=f"power law: slope {fit['loglog_slope']:.2f}")
        ax.plot(grid, fit["origin_slope"] * grid, "--", color="grey",
                label=f"proportional: {fit['origin_slope']:.3g} N, $R^2$ = {fit['origin_r2']:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="dataset size N", ylabel=r"$\tau_{mem}$ (steps)")
    ax.set_xticks(n, [f"{v:g}" for v in n], minor=False)
    ax.set_xticks([], minor=True)
    ax.legend(fontsize=8)
    save(fig, out_dir, "tau_vs_n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python plot.py RUN_DIR_OR_SWEEP_DIR")
    target = Path(sys.argv[1])
    try:
        if (target / "sweep.json").exists():
            plot_sweep(target)
        elif (target / "config.json").exists():
            plot_run(target)
        else:
            raise SystemExit(f"error: {target} holds neither a sweep (sweep.json) nor a run (config.json)")
    except metrics.LogError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"figures in {target / 'figures'}")
