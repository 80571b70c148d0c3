"""Twin runs on disjoint data (Kadkhodaie et al., ICLR 2024, arXiv:2310.02557): two networks of
one config, one trained on the first N images and its twin on the next N (`--data_offset N`),
sampled from the same noise and labels (their evaluations draw them from the same seed). While
they generalize they learn nearly the same function and give nearly the same images; once they
memorize, each gives its own training images and the pairs part.

    python twins.py RUN RUN_TWIN        # RUN/twins.npz and RUN/figures/twins.png
    python sweep.py --axis data --twin  # every run of the axis with its twin; their similarity by T

The similarity of a pair of samples is the Pearson correlation of their pixels (the cosine
similarity of the two images once each image's own mean is removed: a shared palette alone
does not make two images alike). Beside it, its chance level: the same between samples of
different noises (sample i of one run with sample i + 1 of the other). The pairs compared are
the samples each evaluation stores (cfg.grid_samples of them, samples/step_*.npz).
"""
import json
import sys
from pathlib import Path

import numpy as np

import files
import metrics


class TwinError(ValueError):
    """Two run directories that are not twins; the message says what differs."""


def paired_similarity(a, b):
    """(n,) Pearson correlation of the pixels of a[i] and b[i]; a, b: (n, H, W, C) images."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.where(norms > 0, norms, 1.0)


def check_twins(cfg_a, cfg_b):
    """The two configs must be one config but for where their training images start, and those
    ranges must not overlap."""
    differ = sorted(k for k in cfg_a if k not in ("data_offset", "run_dir") and cfg_a[k] != cfg_b.get(k))
    if differ:
        raise TwinError(f"not twins: they differ in {', '.join(differ)} (twins differ only in --data_offset)")
    first, second = sorted((cfg_a.get("data_offset", 0), cfg_b.get("data_offset", 0)))
    if second - first < cfg_a["num_train"]:
        raise TwinError(f"not twins: their training images overlap (data_offset {first} and {second} with "
                        f"num_train {cfg_a['num_train']}); the twin of a run takes --data_offset {first + cfg_a['num_train']}")


def stored_samples(run):
    """{step: the samples the run stored at that sample evaluation (n, H, W, C)}."""
    import plot  # its reader of samples/step_*.npz, which skips damaged files

    return {int(path.stem.split("_")[1]): arrays["samples"] for path, arrays in plot.sample_files(run)}


def copies_by_step(log):
    """{sample step: the run's copy fraction there} ({} for a run without evaluations)."""
    if not log:
        return {}
    key = metrics.summary_keys(log)[0]
    return dict(zip(metrics.steps_of(log, key).astype(int).tolist(), np.asarray(log[key], float).tolist()))


def compare(run_a, run_b):
    """{'step', 'similarity', 'similarity_chance', 'mem', 'mem_twin'} over the sample steps both
    runs stored (arrays): the mean paired similarity, its chance level, each run's copy fraction."""
    configs = [json.loads((Path(run) / "config.json").read_text()) for run in (run_a, run_b)]
    check_twins(*configs)
    samples = [stored_samples(run) for run in (run_a, run_b)]
    logs = [metrics.load_log(run) for run in (run_a, run_b)]
    copies = [copies_by_step(log) for log in logs]
    out = {key: [] for key in ("step", "similarity", "similarity_chance", "mem", "mem_twin")}
    for step in sorted(set(samples[0]) & set(samples[1])):
        a, b = samples[0][step], samples[1][step]
        n = min(len(a), len(b))
        out["step"].append(step)
        out["similarity"].append(float(paired_similarity(a[:n], b[:n]).mean()))
        out["similarity_chance"].append(float(paired_similarity(a[:n], np.roll(b[:n], -1, axis=0)).mean()))
        for key, run_copies in zip(("mem", "mem_twin"), copies):
            out[key].append(float(run_copies.get(step, np.nan)))
    return {key: np.asarray(values) for key, values in out.items()}


def save_comparison(run_a, run_b):
    """compare() written to run_a/twins.npz (with the twin's path) and drawn in run_a/figures."""
    result = compare(run_a, run_b)
    with files.atomic_write(Path(run_a) / "twins.npz") as file:
        np.savez(file, twin=str(run_b), **result)
    plot_twins(run_a, run_b, result)
    return result


def plot_twins(run_a, run_b, result):
    """The paired similarity against step with each run's tau_mem, and the paired samples at the
    run's best fidelity before tau_mem and at the end."""
    import plot

    plt = plot.plt
    logs = [metrics.load_log(run) for run in (run_a, run_b)]
    fig, (ax, ax_mem) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax.plot(result["step"], result["similarity"], "o-", color="C0", label="paired samples (same noise)")
    ax.plot(result["step"], result["similarity_chance"], "o--", color="grey", label="unpaired (chance)")
    ax_mem.plot(result["step"], result["mem"], "o-", color="C3", label="copies, run")
    ax_mem.plot(result["step"], result["mem_twin"], "s--", color="C1", label="copies, twin")
    for axis in (ax, ax_mem):
        for log in logs:  # tau_mem of the run and of its twin
            if log:
                plot.mark_tau(axis, metrics.memorization_time(log))
        axis.set(xscale="log", xlabel="step")
        axis.legend(fontsize=8)
    ax.set_ylabel("pixel correlation of the pair")
    ax_mem.set(ylabel="memorization score", ylim=(-0.03, 1.03))
    fig.suptitle(f"twins on disjoint data: {Path(run_a).name} and {Path(run_b).name}", fontsize=10)
    plot.save(fig, Path(run_a) / "figures", "twins")

    stored = [stored_samples(run) for run in (run_a, run_b)]
    best = np.nan
    if logs[0]:
        mem_key, swd_key = metrics.summary_keys(logs[0])
        best = metrics.summarize_run(logs[0], swd_key=swd_key, mem_key=mem_key)["best_swd_step"]
    steps = [int(s) for s in (best, result["step"][-1]) if np.isfinite(s) and int(s) in stored[0] and int(s) in stored[1]]
    count = min(8, *(len(stored[0][s]) for s in steps)) if steps else 0
    if not count:
        return
    fig, axes = plt.subplots(2 * len(steps), count, figsize=(count * 0.9, 2 * len(steps) * 0.95), squeeze=False)
    for i, step in enumerate(steps):
        for j, (run, images) in enumerate(((run_a, stored[0][step]), (run_b, stored[1][step]))):
            for c in range(count):
                axes[2 * i + j, c].imshow(images[c], interpolation="nearest")
                axes[2 * i + j, c].set_xticks([])
                axes[2 * i + j, c].set_yticks([])
            axes[2 * i + j, 0].set_ylabel(f"{Path(run).name}\nstep {step}", fontsize=6)
    fig.suptitle("paired samples (same noise, one column): at the best fidelity before tau_mem, and at the end",
                 fontsize=8)
    plot.save(fig, Path(run_a) / "figures", "twins_samples")


def plot_axis(pairs, mins, out_dir):
    """Every pair of an axis: paired similarity against the normalized step T, each run's
    tau_mem (in T) a dotted line of its colour. pairs: [(name, config dict, compare())]."""
    import plot

    plt = plot.plt
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (name, cfg, result) in enumerate(pairs):
        ax.plot(metrics.normalized_step(result["step"], cfg, mins), result["similarity"], "o-", ms=3,
                color=f"C{i}", label=name)
        ax.plot(metrics.normalized_step(result["step"], cfg, mins), result["similarity_chance"], ":",
                color=f"C{i}", linewidth=0.8)
        tau = metrics.memorization_time(metrics.load_log(cfg["run_dir"]))
        if np.isfinite(tau):
            ax.axvline(metrics.normalized_step(tau, cfg, mins), color=f"C{i}", linestyle="--", linewidth=0.8)
    ax.set(xscale="log", xlabel="normalized step T", ylabel="paired similarity (pixel correlation)",
           title="twins on disjoint data (dashed: tau_mem; dotted: unpaired)")
    ax.legend(fontsize=8)
    plot.save(fig, Path(out_dir), "twins_axis")


def main(argv):
    if len(argv) != 2:
        raise SystemExit("usage: python twins.py RUN RUN_TWIN   (two runs of one config, --data_offset 0 and N)")
    try:
        result = save_comparison(*argv)
    except (TwinError, metrics.LogError, OSError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    for step, same, chance in zip(result["step"], result["similarity"], result["similarity_chance"]):
        print(f"step {step:>7d}: paired similarity {same:.3f} (chance {chance:.3f})")
    print(f"wrote {Path(argv[0]) / 'twins.npz'} and {Path(argv[0]) / 'figures'}/twins*.png")


if __name__ == "__main__":
    main(sys.argv[1:])
