"""The study in one file: presets (named sets of train.Config fields) and the sweep axes.

A fork that studies something else edits this file only:
- PRESETS: `python train.py --preset NAME` applies the fields; `paper` is the Config defaults.
- AXES: for each preset, the axes `python sweep.py --axis NAME` sweeps, one Config field
  each, with its values and any fields the axis sets on top of the preset. Every run of an
  axis gets the same budget of normalized steps T = step * (N_min/N) * (B/B_min) * (lr/lr_min)
  (see sweep.py).

    python study.py            # print the presets and axes
"""

PRESETS = {
    # The paper's setup (Appendix A) on CIFAR-10: the Config defaults, sampling with bfloat16
    # inputs to the U-Net's matmuls and convolutions (docs/METHODS.md, "Precision"). Its
    # evaluation samples 512 images at 10 of the 30 evaluations, to keep evaluation a small
    # share of the run's FLOPs (python plan.py --preset paper says how small).
    "paper": dict(sample_dtype="bfloat16"),
    # The paper's own evaluation: 5,120 samples at every evaluation, SW on 2,000 of them; its
    # cost against the training: python plan.py --preset paper-dense.
    "paper-dense": dict(sample_dtype="bfloat16", num_sample_evals=30, num_samples=5120, swd_samples=2000),
    # The built-in dead leaves at 16x16, the class-conditional U-Net at 1M parameters, short
    # sampling: every axis within minutes on a 2-core CPU. Fidelity in pixels and in a fixed
    # random ConvNet's features (randconv: no download, sees edges that pixel moments miss).
    # Why these values: docs/METHODS.md, "How the cpu preset was chosen".
    "cpu": dict(dataset="leaves", num_train=40, num_test=1024, image_size=16, base_channels=16,
                channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,), batch_size=16,
                lr=3e-3, steps=2000, ema_decay=0.995, num_evals=20, num_sample_evals=8, first_eval=20,
                eval_train_size=512, sample_steps=25, num_samples=256, swd_samples=256,
                feature_spaces=("pixels", "randconv"), grid_samples=64, checkpoint_minutes=2.0,
                distance_images=256, patch_size=5),
}

AXES = {
    # (Config field, its values, Config fields the axis sets on top of the preset)
    # The paper's values; its defaults are N=2048, C=128 (92.7M parameters), B=16, lr=1e-4.
    # base_channels 16..192 give its five model sizes (2.9M, 7.9M, 25.8M, 92.7M, 201.3M).
    # lr: twice the default steps, as on the cpu axis: at equal T the largest lr (4e-4) would get
    # a quarter of the default run's steps, and the cpu axis showed a run that short can end
    # before its samples are copies; this way lr = 4e-4 gets half (50,000).
    "paper": {"data": ("num_train", (2048, 4096, 8192, 16384), {}),
              "model": ("base_channels", (16, 32, 64, 128, 192), {}),
              "batch": ("batch_size", (16, 32, 64, 128), {}),
              "lr": ("lr", (1e-5, 5e-5, 1e-4, 4e-4), dict(steps=200_000))},
    # Scaled to the cpu preset (N=40, C=16, B=16, lr=3e-3); why each axis sets its fields:
    # docs/METHODS.md, "How the cpu preset was chosen".
    # data: no labels (at a few images per class the labels bend the tau_mem-N line), 8x8
    #   images (half the step time, so N up to 320 fits), lr = 1e-3 (at 3e-3 tau_mem grows
    #   faster than N), 100 N steps; from N = 40, below which the network memorizes before its
    #   samples are better than noise.
    # model: one GroupNorm group per channel, so only the width changes along the axis (gcd(32, C)
    #   groups would change the group sizes with C unevenly); from C = 16, the smallest that
    #   copies within the budget.
    # lr: twice the preset's steps, since equal T gives the largest lr the fewest steps.
    "cpu": {"data": ("num_train", (40, 80, 160, 320),
                     dict(conditional=False, image_size=8, attention_resolutions=(4,), lr=1e-3, steps=4000,
                          patch_size=3)),
            "model": ("base_channels", (16, 24, 32, 48), dict(norm_groups=0)),
            "batch": ("batch_size", (4, 8, 16, 32), {}),
            "lr": ("lr", (7.5e-4, 1.5e-3, 3e-3, 6e-3), dict(steps=4000))},
}

AXES["paper-dense"] = AXES["paper"]  # the same study, with the paper's evaluation

# The cpu preset with its evaluation made dense as paper-dense makes the paper's (samples at
# every evaluation, 10x the samples, SW on about 4x), and its loss sets doubled. The same
# training, so one run of each shows how far the cheap schedule's numbers, and each rule for
# tau_mem, move with the evaluation (docs/RESULTS.md, "The evaluation schedule"):
# python sweep.py --axis data --preset cpu-dense --index 0.
PRESETS["cpu-dense"] = dict(PRESETS["cpu"], num_sample_evals=20, num_samples=2560, swd_samples=1000,
                            eval_train_size=1024, num_test=2048)
AXES["cpu-dense"] = AXES["cpu"]


if __name__ == "__main__":
    for name, fields in PRESETS.items():
        print(f"preset {name}: {fields or '(the Config defaults)'}")
        for axis, (field, values, axis_fields) in AXES.get(name, {}).items():
            print(f"    axis {axis:<6} {field} = {', '.join(f'{v:g}' for v in values)}  {axis_fields or ''}")
