"""plan.py: its FLOP counts against a hand count of the U-Net's matmuls and against the
compiled train step (bench.py's number), its arithmetic, and the paper run's evaluation share."""
import dataclasses

import numpy as np
import pytest

import parallel
import plan
import train
import unet
from conftest import TINY


def taps(size):
    """Multiply-adds per input/output channel pair of a 3x3 'same' convolution on a size x size
    image: the kernel taps that fall inside the image, (3 size - 2)^2 (the zero padding is
    not multiplied)."""
    return (3 * size - 2) ** 2


def hand_count_forward(cfg):
    """2 * multiply-adds of every convolution, dense layer and attention product of one U-Net
    forward on one image: the FLOPs that matter, counted from the architecture by hand."""
    model = train.model_config(cfg)
    e, c = model.embed_dim, model.base_channels
    total = 2 * e * e * 2  # the noise MLP: two E x E layers
    res = model.image_size
    total += 2 * taps(res) * 3 * c  # conv_in
    down, middle, up = unet.layout(model)
    size = {"res": res}

    def block_flops(blk, res):
        out_res = res // 2 if blk.resample == "down" else res * 2 if blk.resample == "up" else res
        flops = 2 * taps(out_res) * (blk.c_in * blk.c_out + blk.c_out * blk.c_out)  # two 3x3 convs
        flops += 2 * e * 2 * blk.c_out  # scale-and-shift projection
        if blk.c_in != blk.c_out:
            flops += 2 * out_res ** 2 * blk.c_in * blk.c_out  # 1x1 skip
        if blk.attn:
            n, ch = out_res ** 2, blk.c_out
            flops += 2 * n * ch * 4 * ch + 2 * 2 * n * n * ch  # qkv + out projections; QK^T and AV
        return flops, out_res

    for blk in down + middle + up:
        flops, size["res"] = block_flops(blk, size["res"])
        total += flops
    total += 2 * taps(res) * c * 3  # conv_out
    return total


@pytest.mark.parametrize("fields", [dict(TINY), dict(TINY, base_channels=16, num_res_blocks=2, image_size=16,
                                                      attention_resolutions=(8,))])
def test_forward_flops_match_a_hand_count_of_the_matmuls(fields):
    cfg = train.Config(**fields)
    _, forward = plan.unet_costs(train.model_config(cfg), cfg.batch_size)
    hand = hand_count_forward(cfg)
    assert hand < forward < 1.25 * hand  # the rest: norms, activations, softmax


def test_train_step_flops_are_close_to_the_compiled_steps():
    """plan.py counts the lowered program; the compiled one differs by what the CPU backend's
    rewrites add or drop."""
    cfg = train.Config(**TINY)
    step_flops, forward = plan.unet_costs(train.model_config(cfg), cfg.batch_size)
    state = parallel.replicate(train.init_state(cfg))
    b = cfg.batch_size
    images = parallel.shard(np.zeros((b, 8, 8, 3), np.float32))
    labels = parallel.shard(np.zeros(b, np.int32))
    compiled = train.make_train_step(cfg).lower(state, images, labels, labels).compile().cost_analysis()["flops"]
    assert abs(step_flops / compiled - 1) < 0.25
    assert 2.5 * forward * b < step_flops < 4 * forward * b  # backward is about twice the forward


def test_run_costs_add_up():
    cfg = dataclasses.replace(train.Config(**TINY), steps=100, num_evals=10, num_sample_evals=4, first_eval=10)
    costs = plan.run_costs(cfg)
    step_flops, forward = plan.unet_costs(train.model_config(cfg), cfg.batch_size)
    assert costs["train"] == step_flops * 100
    n_evals, n_sample = len(train.eval_steps(cfg)), len(train.sample_eval_steps(cfg))
    assert costs["losses"] == pytest.approx(forward * (cfg.eval_train_size + cfg.num_test) * n_evals)
    assert costs["sampling"] == pytest.approx(forward * cfg.sample_steps * cfg.num_samples * n_sample)
    assert costs["features"] == 0  # pixels only
    without = plan.run_costs(dataclasses.replace(cfg, distance_images=0))
    assert without["distances"] == 0 and costs["distances"] > forward * cfg.distance_images * n_evals
    guided = plan.run_costs(dataclasses.replace(cfg, guidance=1.0))
    assert guided["sampling"] == pytest.approx(2 * costs["sampling"])  # two calls per step


def test_the_default_paper_run_spends_at_most_a_quarter_on_evaluation():
    cfg = train.Config()
    costs = plan.run_costs(cfg)
    evaluation = sum(costs[p] for p in ("losses", "sampling", "references", "distances", "features"))
    assert evaluation / (evaluation + costs["train"]) <= 0.25
    assert len(train.sample_eval_steps(cfg)) >= 10 and len(train.eval_steps(cfg)) >= 10


def test_xla_flag_settings_are_compared_in_processes_of_their_own(capsys, monkeypatch):
    """bench.py --compare_xla_flags: each setting runs bench.py in a process of its own with
    XLA_FLAGS set (stood in for here by what such a process prints: 100 then 80 ms/step for the
    default, 50 for the other setting), and the table gives medians and ratios to the first."""
    import subprocess

    import bench

    printed = {"": iter([100.0, 80.0, 120.0]), "--other": iter([50.0, 50.0, 50.0])}

    def fake_run(command, env, capture_output, text):
        assert command[1].endswith("bench.py") and command[2:] == ["--preset", "cpu"]
        ms = next(printed[env["XLA_FLAGS"]])
        return subprocess.CompletedProcess(command, 0, f"model ...\ntrain   batch 16: {ms} ms/step, 1 img/s\n"
                                                       f"sample  batch 256: {1000 / ms} img/s at 25 Euler steps\n", "")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    bench.compare_xla_flags(["", "--other"], ["--preset", "cpu"], rounds=3)
    table = capsys.readouterr().out.split("| XLA_FLAGS |")[1].splitlines()
    assert [cell.strip() for cell in table[2].split("|")[1:-1]] == ["(default)", "100.0", "1.00", "10", "1.00"]
    assert [cell.strip() for cell in table[3].split("|")[1:-1]] == ["--other", "50.0", "0.50", "20", "2.00"]
    monkeypatch.setattr(bench.subprocess, "run", lambda command, env, **_: subprocess.CompletedProcess(
        command, 1, "", "Unknown flags in XLA_FLAGS: --no_such_flag"))
    with pytest.raises(SystemExit, match="XLA_FLAGS='--no_such_flag' failed: Unknown flags in XLA_FLAGS"):
        bench.compare_xla_flags(["--no_such_flag"], ["--preset", "cpu"], rounds=1)
