"""profiling.py: the kinds it sums an operation's time into, checked on programs made of one
known kind of work, in XLA and in torch, and on the tiny U-Net's train step."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bench
import profiling


def dominant_kind(by_kind):
    """The kind of operation with the most time (the time between operations is not one)."""
    return max(profiling.KINDS, key=by_kind.get)


@pytest.mark.parametrize("kind, fn, shape", [
    ("matmul", lambda x: x @ x, (512, 512)),
    ("convolution", lambda x: jax.lax.conv_general_dilated(x, jnp.ones((3, 3, 32, 32)), (1, 1), "SAME",
                                                           dimension_numbers=("NHWC", "HWIO", "NHWC")),
     (16, 32, 32, 32)),
    ("reduction", lambda x: x.sum(axis=0), (4096, 1024)),
    ("layout copy", lambda x: x.T, (2048, 2048)),
    ("elementwise", lambda x: jnp.tanh(x) * jnp.exp(x), (2048, 2048)),
])
def test_an_xla_program_of_one_kind_of_work_is_profiled_as_that_kind(tmp_path, kind, fn, shape):
    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape, np.float32))
    compiled = jax.jit(fn).lower(x).compile()
    run = lambda: compiled(x)
    jax.block_until_ready(run())
    by_kind, ops = profiling.jax_profile(run, compiled.as_text(), tmp_path / "trace", steps=3)
    assert set(by_kind) == {*profiling.KINDS, profiling.BETWEEN}
    assert dominant_kind(by_kind) == kind, by_kind
    assert ops[0][1] == kind and ops[0][0] == max(ms for ms, *_ in ops)  # heaviest first
    assert sum(by_kind[k] for k in profiling.KINDS) == pytest.approx(sum(ms for ms, *_ in ops))
    assert by_kind[profiling.BETWEEN] >= 0  # the operations fit in the wall time of the steps


def test_covered_time_is_the_length_of_the_union_of_the_intervals():
    assert profiling.covered([]) == 0
    assert profiling.covered([(0, 10), (5, 10), (30, 5), (31, 1)]) == 15 + 5  # overlaps count once
    rng = np.random.default_rng(0)
    intervals = [(float(s), float(d)) for s, d in zip(rng.uniform(0, 100, 50), rng.uniform(0, 5, 50))]
    grid = np.arange(0, 110, 0.001)  # brute force: the grid points inside some interval
    inside = np.zeros_like(grid, bool)
    for start, duration in intervals:
        inside |= (grid >= start) & (grid < start + duration)
    assert profiling.covered(intervals) == pytest.approx(inside.sum() * 0.001, abs=0.01)


def test_hlo_kind_takes_a_fusion_by_the_heaviest_op_it_fuses():
    assert profiling.hlo_kind("fusion", {"parameter", "convolution", "reduce", "multiply"}) == "convolution"
    assert profiling.hlo_kind("fusion", {"parameter", "dot", "add"}) == "matmul"
    assert profiling.hlo_kind("fusion", {"parameter", "transpose", "multiply"}) == "layout copy"
    assert profiling.hlo_kind("fusion", {"parameter", "pad", "bitcast", "concatenate"}) == "layout copy"
    assert profiling.hlo_kind("fusion", {"parameter", "pad", "add"}) == "elementwise"
    assert profiling.hlo_kind("while") == "other"


def test_the_train_step_profile_holds_every_kind_of_work_of_the_unet(tmp_path, tiny_config, capsys):
    state = bench.train.init_state(tiny_config)
    images, labels = bench.fake_batch(tiny_config, tiny_config.batch_size)
    run, hlo_text = bench.jax_train_step(tiny_config, state, images, labels)
    jax.block_until_ready(run())
    by_kind, ops = profiling.jax_profile(run, hlo_text(), tmp_path / "trace", steps=2)
    for kind in ("convolution", "matmul", "reduction", "elementwise"):
        assert by_kind[kind] > 0, kind
    assert all(shape.startswith(("f32[", "s32[", "u32[", "pred[", "(")) for *_, shape in ops)
    profiling.print_profile(by_kind, ops)
    table = capsys.readouterr().out
    shares = [float(line.split("|")[3].strip("% ")) for line in table.splitlines()
              if line.startswith("| ") and line.split("|")[1].strip() in (*profiling.KINDS, profiling.BETWEEN)]
    assert len(shares) == len(profiling.KINDS) + 1 and sum(shares) == pytest.approx(100, abs=4)


def test_a_torch_program_of_one_kind_of_work_is_profiled_as_that_kind():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    a, images = torch.randn(384, 384), torch.randn(8, 16, 32, 32)
    weight = torch.randn(16, 16, 3, 3)
    programs = {"matmul": lambda: a @ a, "convolution": lambda: F.conv2d(images, weight, padding=1),
                "reduction": lambda: F.group_norm(images, 4), "layout copy": lambda: torch.cat([images] * 8)}
    for kind, run in programs.items():
        run()
        by_kind, ops = profiling.torch_profile(run, steps=3)
        assert dominant_kind(by_kind) == kind, (kind, ops[:3])


def test_bench_keeps_the_profile_of_a_config_in_its_row(tmp_path, tiny_config, capsys):
    row = bench.bench(tiny_config, with_torch=False, peak=1e9, profile_dir=tmp_path / "trace")
    profile = row["profile"]
    assert set(profile) == {"jax", "jax_top"}
    assert set(profile["jax"]) == {*profiling.KINDS, profiling.BETWEEN}
    assert len(profile["jax_top"]) <= bench.PROFILE_TOP * len(profiling.KINDS)
    for kind in profiling.KINDS:  # the heaviest of each kind, heaviest first
        of_kind = [ms for ms, k, *_ in profile["jax_top"] if k == kind]
        assert of_kind == sorted(of_kind, reverse=True)
    assert "where a train step's time goes" in capsys.readouterr().out
