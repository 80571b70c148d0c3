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


def test_time_shares_split_the_time_among_the_spans_running_at_once():
    assert profiling.time_shares([]) == []
    assert profiling.time_shares([(0, 10), (5, 10), (30, 5)]) == [7.5, 7.5, 5]  # 5..10 shared by two
    rng = np.random.default_rng(0)
    spans = [(float(s), float(d)) for s, d in zip(rng.uniform(0, 100, 40), rng.uniform(0, 8, 40))]
    step = 0.001  # brute force: at each grid point, each running span gets 1/k of the step
    grid = np.arange(0, 110, step) + step / 2
    running = np.array([(grid >= s) & (grid < s + d) for s, d in spans])  # (spans, points)
    count = running.sum(axis=0)
    expected = (running / np.maximum(count, 1)).sum(axis=1) * step
    np.testing.assert_allclose(profiling.time_shares(spans), expected, atol=0.01)
    assert sum(profiling.time_shares(spans)) == pytest.approx((count > 0).sum() * step, abs=0.01)


def test_an_operation_that_finishes_on_the_thread_pool_spans_to_its_end_event():
    events = [("conv.1", 0.0, 0.05), ("end: conv.1", 3.0, 0.01), ("add.2", 3.1, 0.5), ("end: add.2", 3.6, 0.0),
              ("$python frame", 0.0, 5.0), ("conv.1", 10.0, 0.05), ("end: conv.1", 12.0, 0.01), ("dot.3", 13.0, 1.0)]
    spans = profiling.operation_spans(events, {"conv.1": None, "add.2": None, "dot.3": None})
    assert spans == [("conv.1", 0.0, 3.01), ("add.2", 3.1, 0.5), ("conv.1", 10.0, 2.01), ("dot.3", 13.0, 1.0)]


def test_each_instruction_knows_the_python_line_that_made_it():
    def fn(x):
        y = jnp.tanh(x) * 3.0  # LINE tanh
        return y @ y.T  # LINE dot

    lines = {tag: number for number, text in enumerate(open(__file__).read().splitlines(), 1)
             for tag in ("LINE tanh", "LINE dot") if text.rstrip().endswith(f"# {tag}")}
    x = jnp.ones((64, 64))
    instructions = profiling.hlo_instructions(jax.jit(fn).lower(x).compile().as_text())
    by_kind = {profiling.hlo_kind(i.opcode, i.fused): i.source for i in instructions.values() if i.source}
    assert by_kind["matmul"] == f"fn (test_profiling.py:{lines['LINE dot']})"
    assert by_kind["elementwise"] == f"fn (test_profiling.py:{lines['LINE tanh']})"


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
    assert all(shape.startswith(("f32[", "s32[", "u32[", "pred[", "(")) for _, _, _, shape, _ in ops)
    # the lines of code behind the time: the U-Net's convolutions among them
    lines = profiling.by_source(ops)
    assert any(kind == "convolution" and source.startswith("conv (unet.py:") for _, kind, source in lines)
    assert [ms for ms, *_ in lines] == sorted((ms for ms, *_ in lines), reverse=True)
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
    assert set(row["profile"]) == {"train", "sample"}
    assert set(row["profile"]["sample"]) == {"jax", "jax_top", "jax_lines"}
    profile = row["profile"]["train"]
    assert set(profile) == {"jax", "jax_top", "jax_lines"}
    assert set(profile["jax"]) == {*profiling.KINDS, profiling.BETWEEN}
    assert len(profile["jax_top"]) <= bench.PROFILE_TOP * len(profiling.KINDS)
    for kind in profiling.KINDS:  # the heaviest of each kind, heaviest first
        of_kind = [ms for ms, k, *_ in profile["jax_top"] if k == kind]
        assert of_kind == sorted(of_kind, reverse=True)
    printed = capsys.readouterr().out
    assert "where the time of a train step goes" in printed and "of a sampler's Euler step on 8 images" in printed
