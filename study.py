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
    # inputs to the U-Net's matmuls and convolutions (README, "Precision"). Its evaluation
    # samples 512 images at 10 of the 30 evaluations, which keeps evaluation under a quarter
    # of the default run's FLOPs (python plan.py --preset paper).
    "paper": dict(sample_dtype="bfloat16"),
    # The paper's own evaluation: 5,120 samples at every evaluation, SW on 2,000 of them. On
    # the default run, sampling then costs 8x the training (python plan.py --preset paper-dense).
    "paper-dense": dict(sample_dtype="bfloat16", num_sample_evals=30, num_samples=5120, swd_samples=2000),
    # The built-in dead leaves at 16x16, the class-conditional U-Net at 1M parameters, short
    # sampling: every axis in under half an hour on a 2-core CPU. Fidelity in pixels and in a
    # fixed random ConvNet's features (randconv: no download, sees edges that pixel moments miss).
    # How it was chosen, and what it shows and does not: README, "Results of the cpu study" and
    # "How the cpu preset was chosen".
    "cpu": dict(dataset="leaves", num_train=40, num_test=1024, image_size=16, base_channels=16,
                channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,), batch_size=16,
                lr=3e-3, steps=2000, ema_decay=0.995, num_evals=20, num_sample_evals=8, first_eval=20,
                eval_train_size=512, sample_steps=25, num_samples=256, swd_samples=256,
                feature_spaces=("pixels", "randconv"), grid_samples=64, checkpoint_minutes=2.0),
}

AXES = {
    # (Config field, its values, Config fields the axis sets on top of the preset)
    # The paper's values; its defaults are N=2048, C=128 (92.7M parameters), B=16, lr=1e-4.
    # base_channels 16..192 give its five model sizes (2.9M, 7.9M, 25.8M, 92.7M, 201.3M).
    "paper": {"data": ("num_train", (2048, 4096, 8192, 16384), {}),
              "model": ("base_channels", (16, 32, 64, 128, 192), {}),
              "batch": ("batch_size", (16, 32, 64, 128), {}),
              "lr": ("lr", (1e-5, 5e-5, 1e-4, 4e-4), {})},
    # Scaled to the cpu preset (N=40, C=16, B=16, lr=3e-3). The data axis trains without labels
    # (at 1..8 images per class the labels sped memorization up most at the smallest N and bent
    # the line; the paper has 205..1638 images per class), on 8x8 images (attention at 4x4, the same 963,507 parameters; a step
    # takes half the time of a 16x16 one), at lr = 1e-3, for 100 N steps. With the preset's
    # lr = 3e-3, tau_mem grew as N^1.24..1.58 over N = 40..320 (its minimum flat at N = 320);
    # at 1e-3 the test loss turns up sharply at every N. It starts at N = 40: below that the
    # network memorizes before its samples are better than noise (README, "Dataset size").
    # The model axis normalizes each channel on its own: with gcd(32, C) groups the group sizes
    # change with C unevenly (C = 24 has 3 channels per group in every layer and 9 in its
    # 72-channel ones, the others mostly 1 or 2), and C = 24 then memorized later than C = 16
    # (README, "Model size"); it starts at C = 16, as C = 8 ended with 2% copies. The lr axis
    # gets twice the preset's steps: equal T gives lr = 6e-3 half the steps of lr = 3e-3, and in
    # 1,000 steps its samples are not yet copies (4%; 64% after 2,000).
    "cpu": {"data": ("num_train", (40, 80, 160, 320),
                     dict(conditional=False, image_size=8, attention_resolutions=(4,), lr=1e-3, steps=4000)),
            "model": ("base_channels", (16, 24, 32, 48), dict(norm_groups=0)),
            "batch": ("batch_size", (4, 8, 16, 32), {}),
            "lr": ("lr", (7.5e-4, 1.5e-3, 3e-3, 6e-3), dict(steps=4000))},
}

AXES["paper-dense"] = AXES["paper"]  # the same study, with the paper's evaluation


if __name__ == "__main__":
    for name, fields in PRESETS.items():
        print(f"preset {name}: {fields or '(the Config defaults)'}")
        for axis, (field, values, axis_fields) in AXES.get(name, {}).items():
            print(f"    axis {axis:<6} {field} = {', '.join(f'{v:g}' for v in values)}  {axis_fields or ''}")
