# %% [markdown]
# # Memorization in a diffusion model, step by step
#
# A walkthrough of the study on the `cpu` preset: 40 dead-leaves images at 16x16, a
# class-conditional U-Net of 1M parameters, rectified flow. We look at the training images and
# the two exact references computed from them, train the network for a few minutes, and watch
# it first generalize (novel samples, test loss falling) and then memorize (test loss rising,
# samples turning into copies of training images).
#
# It runs as a script (`python docs/walkthrough.py`, figures saved to
# `runs/walkthrough/walkthrough/`) and opens as a notebook in Jupyter, VS Code or jupytext,
# with the figures inline. About 3 minutes on 2 CPU cores; `DIFFMEM_WALKTHROUGH_TINY=1` makes
# it tiny (the test runs it so). The definitions it uses are in docs/METHODS.md.

# %%
import dataclasses
import os
import sys
from pathlib import Path

import matplotlib
import numpy as np

IN_NOTEBOOK = "ipykernel" in sys.modules
if not IN_NOTEBOOK:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1] if "__file__" in globals() else Path.cwd().parent
sys.path.insert(0, str(ROOT))
import jax  # noqa: E402

import data  # noqa: E402
import flow  # noqa: E402
import ideal  # noqa: E402
import metrics  # noqa: E402
import plot  # noqa: E402
import study  # noqa: E402
import train  # noqa: E402

TINY = os.environ.get("DIFFMEM_WALKTHROUGH_TINY") == "1"
RUN_DIR = Path(os.environ.get("DIFFMEM_WALKTHROUGH_DIR", "runs/walkthrough"))
FIGURES = RUN_DIR / "walkthrough"
FIGURES.mkdir(parents=True, exist_ok=True)


def show(fig, name):
    """Inline in a notebook; saved to FIGURES either way."""
    fig.savefig(FIGURES / f"{name}.png", dpi=110, bbox_inches="tight")
    plt.show() if IN_NOTEBOOK else print(f"figure: {FIGURES / name}.png")
    plt.close(fig)


def show_saved(path):
    """A figure plot.py wrote to disk."""
    if IN_NOTEBOOK:
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    else:
        print(f"figure: {path}")


# The cpu preset, 1,500 steps: long enough to pass tau_mem and see the first copies.
fields = {**study.PRESETS["cpu"], "steps": 1500, "run_dir": str(RUN_DIR)}
if TINY:  # seconds, not minutes: the test of this file
    fields.update(image_size=8, base_channels=8, attention_resolutions=(4,), head_dim=8, embed_dim=32, steps=40,
                  num_evals=4, num_sample_evals=2, first_eval=10, num_test=32, eval_train_size=40, num_samples=16,
                  swd_samples=16, grid_samples=8, sample_steps=4, feature_spaces=("pixels",), distance_images=32)
cfg = train.make_config(fields)

# %% [markdown]
# ## The training images
#
# The first N = 40 images of the built-in `leaves` data: opaque disks of random sizes stacked
# until they cover the image, a classic model of natural-image statistics. Image i has class
# i mod 10, which sets its palette.

# %%
dataset = data.load(cfg.dataset, num_train=cfg.num_train, num_test=cfg.num_test, data_dir=cfg.data_dir,
                     image_size=cfg.image_size, seed=cfg.data_seed)
fig, axes = plt.subplots(4, 10, figsize=(10, 4.3))
for ax, image, label in zip(axes.flat, dataset.train_images, dataset.train_labels):
    ax.imshow(image, interpolation="nearest")
    ax.set_title(f"class {label}", fontsize=7)
    ax.axis("off")
show(fig, "training_images")

# %% [markdown]
# ## Two exact references
#
# The training set defines two denoisers we can compute exactly (`ideal.py`):
# - the **memorizer**, the velocity field of the training set itself: the best possible
#   denoiser of these 40 images, which can only ever produce them;
# - the **Gaussian fit**: the best denoiser that knows only the images' mean and covariance.
#
# Their losses bracket what the network can do: on the training images the memorizer's loss
# is the floor; on held-out images it explodes at low noise (t near 1), because it snaps every
# input to a training image.

# %%
x_train, x_test = data.to_model_range(dataset.train_images), data.to_model_range(dataset.test_images)
references = {"memorizer": (ideal.memorizer_velocity, ideal.memorizer_params(x_train, dataset.train_labels, 10)),
              "Gaussian fit": (ideal.gaussian_velocity, ideal.gaussian_params(x_train))}
key_noise, key_t = jax.random.split(jax.random.PRNGKey(0))


def loss_by_noise_level(velocity, params, x, labels):
    """The rectified-flow loss in 10 bins of t (bin 0: pure noise), on fixed noise and times."""
    noise = jax.random.normal(key_noise, x.shape)
    t = flow.stratified_times(key_t, len(x))
    return flow.bin_means(t, flow.per_sample_loss(velocity, params, x, labels, noise, t))


fig, ax = plt.subplots(figsize=(6, 3.5))
for (name, (velocity, params)), colour in zip(references.items(), ("C3", "C2")):
    for x, labels, style, split in ((x_train, dataset.train_labels, "-", "train"),
                                    (x_test, dataset.test_labels, "--", "test")):
        ax.plot((np.arange(10) + 0.5) / 10, loss_by_noise_level(velocity, params, x, labels), style, color=colour,
                label=f"{name}, {split} images")
ax.set(yscale="log", xlabel="t (0: pure noise, 1: data)", ylabel="loss")
ax.legend(fontsize=8)
show(fig, "reference_losses")

# %% [markdown]
# The memorizer's samples, from noise, are training images: that is what a network that has
# memorized its data produces.

# %%
velocity, params = references["memorizer"]
noise = jax.random.normal(jax.random.PRNGKey(1), (10, *x_train.shape[1:]))
memorized = data.to_uint8(flow.sample(velocity, params, noise, dataset.train_labels[:10], steps=cfg.sample_steps,
                                      null_label=cfg.num_classes))
ratio, nearest = metrics.nearest_neighbour_ratio(memorized, dataset.train_images)
print("nearest-neighbour ratio of each sample (a copy below 1/3):", np.round(ratio, 3))

# %% [markdown]
# ## Training
#
# `train.train` runs the whole loop: the train step, an evaluation at log-spaced steps (losses
# on a fixed set of training images and on the test set, samples at some of them), checkpoints
# and the log. It prints one line per tick and per evaluation, and resumes if the run
# directory holds a run (delete `runs/walkthrough` to start over).

# %%
train.train(cfg)
log = metrics.load_log(RUN_DIR)  # {key: array}, as log.npz holds it
tau_mem = metrics.memorization_time(log)
print(f"tau_mem = {tau_mem:.0f} steps (NaN: the test loss has not turned up for good yet)")

# %% [markdown]
# The train and test loss against the memorizer's floor. Before tau_mem both fall: the
# network generalizes. At tau_mem (the minimum of the smoothed test loss) the test loss turns
# up while the train loss keeps falling toward the memorizer's: the network memorizes.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(log["step"], log["train_loss"], "o-", label="train loss", ms=3)
ax.plot(log["step"], log["test_loss"], "o-", label="test loss", ms=3)
ax.axhline(log["memorizer_train_loss"][0], color="C3", ls=":", label="memorizer, train images")
ax.axhline(log["gaussian_test_loss"][0], color="C2", ls=":", label="Gaussian fit, test images")
if np.isfinite(tau_mem):
    ax.axvline(tau_mem, color="k", lw=0.8, ls="--", label=r"$\tau_{mem}$")
ax.set(xscale="log", yscale="log", xlabel="step", ylabel="loss")
ax.legend(fontsize=8)
show(fig, "losses")

# %% [markdown]
# ## Samples by step, and where the gap opens
#
# The same noise and labels at every sample evaluation (rows): noise, then novel leaf
# textures in the class's palette, then copies of training images (framed in red).

# %%
plot.plot_sample_evolution(RUN_DIR, FIGURES)
show_saved(FIGURES / "samples_by_step.png")

# %% [markdown]
# The test minus train loss by noise level, at each evaluation: memorization opens the gap at
# low noise first, where the network can recognize which training image an input came from.

# %%
gap = np.asarray(log["test_loss_bins"]) - np.asarray(log["train_loss_bins"])  # (evaluations, 10)
fig, ax = plt.subplots(figsize=(6, 3.5))
for row, step in list(zip(gap, log["step"]))[::max(1, len(gap) // 6)]:
    ax.plot((np.arange(10) + 0.5) / 10, row, "o-", ms=3, label=f"step {step}")
ax.axhline(0, color="grey", lw=0.5)
ax.set(xlabel="t (0: pure noise, 1: data)", ylabel="test - train loss")
ax.legend(fontsize=7)
show(fig, "gap_by_noise")

# %% [markdown]
# ## What has the network learnt?
#
# At every evaluation the run also compares the network's velocity, on held-out inputs, with
# the three exact denoisers: the memorizer, the Gaussian fit, and the patch memorizer (every
# 5x5 patch of the training images, a local and translation-equivariant memorizer, as a
# convolutional network is). Per noise level, the relative distance |v - v_ref|² / |v_ref|²:
# which reference the network is closest to, before and after tau_mem.

# %%
plot.plot_distances(log, dataclasses.asdict(cfg), tau_mem, FIGURES)
show_saved(FIGURES / "distances.png")
for name in ("memorizer", "gaussian", "patch"):
    print(f"distance to the {name}, averaged over noise levels, first and last evaluation:",
          np.round(np.nanmean(log[f"distance_{name}_bins"], axis=1)[[0, -1]], 3))

# %% [markdown]
# ## The first copies
#
# The memorization score is the share of samples whose nearest training image is three times
# nearer than the second nearest. The copy onset (5% copies) comes after tau_mem.

# %%
sample_steps, copies = metrics.steps_of(log, "mem_ratio_pixels"), np.asarray(log["mem_ratio_pixels"])
print("copies by sample step:", dict(zip(sample_steps.astype(int).tolist(), np.round(copies, 2).tolist())))
print(f"tau_mem {tau_mem:.0f}, copy onset {metrics.copy_onset(log, 'mem_ratio_pixels'):.0f} (NaN: none yet)")
plot.plot_neighbours(RUN_DIR, FIGURES)
show_saved(FIGURES / "neighbours.png")

# %% [markdown]
# ## Further
#
# The same at four N, with tau_mem against N: `python sweep.py --axis data` (about a quarter
# of an hour on 2 cores). The other axes: `--axis model`, `--axis batch`, `--axis lr`. What
# they found is in docs/RESULTS.md; every run writes one directory, which `python plot.py RUN`
# draws.
