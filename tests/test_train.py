"""Training: the command line, the config's checks, the run directory (resuming, moving,
fixed feature spaces), random streams, data parallelism (1 vs 2 devices, two processes, in
float64 so that the comparison is exact up to rounding), resuming after kill -9, and stopping
on a non-finite loss."""
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import evaluate
import features
import parallel
import rundir
import train
from conftest import TINY

REPO = Path(__file__).resolve().parents[1]


def flags(**overrides):
    out = []
    for key, value in {**TINY, **overrides}.items():
        out += [f"--{key}", ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return out


def run_train(run_dir, devices=1, env=None, **overrides):
    """python train.py in a fresh process with `devices` fake CPU devices."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", **(env or {})}
    cmd = [sys.executable, str(REPO / "train.py"), *flags(run_dir=str(run_dir), data_dir=str(run_dir) + "_data", **overrides)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def checkpoint_params(run_dir):
    with np.load(Path(run_dir) / "checkpoint.npz") as f:
        return {k: f[k] for k in f if k.startswith("state['params']")}


FLOAT64 = {"JAX_ENABLE_X64": "1"}  # see assert_same_training


def assert_same_training(run_a, run_b):
    """Same parameters and losses up to summation order. The runs are in float64: pmean
    averages per-device means instead of summing in one pass, and Adam's g / sqrt(v) turns
    such rounding, for near-zero gradients (zero-initialized layers), into a sign flip of a
    whole lr step; in float32 that makes a few parameters differ by ~lr, in float64 never."""
    a, b = checkpoint_params(run_a), checkpoint_params(run_b)
    assert a.keys() == b.keys() and len(a) > 20
    assert all(value.dtype == np.float64 for value in a.values())
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-12, err_msg=key)
    with np.load(Path(run_a) / "log.npz") as f, np.load(Path(run_b) / "log.npz") as g:
        for key in ("train_loss", "test_loss"):
            np.testing.assert_allclose(f[key], g[key], rtol=1e-9, err_msg=key)


def test_flags_override_fields_and_unknown_flags_are_errors():
    overrides = train.parse_flags(["--preset", "cpu", "--channel_mult", "1,2,2", "--lr", "3e-4",
                                   "--feature_spaces", "pixels,sscd"])
    cfg = train.Config(**overrides)
    assert cfg.channel_mult == (1, 2, 2) and cfg.lr == 3e-4 and cfg.dataset == "leaves"
    assert cfg.feature_spaces == ("pixels", "sscd")
    with pytest.raises(SystemExit, match="unknown flag '--learning_rate'"):
        train.parse_flags(["--learning_rate", "1"])
    with pytest.raises(SystemExit, match="--steps expects int, got 'many'"):
        train.parse_flags(["--steps", "many"])
    with pytest.raises(SystemExit, match="unknown preset 'gpu'"):
        train.parse_flags(["--preset", "gpu"])


def test_help_lists_every_config_field_with_its_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.parse_flags(["--lr", "1e-3", "--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for field in dataclasses.fields(train.Config):
        assert f"  --{field.name} {field.default!r}\n" in listed + "\n"


def test_batches_cover_every_image_once_per_epoch(tiny_config):
    cfg = train.Config(**{**TINY, "num_train": 10, "batch_size": 4})
    stream = np.concatenate([train.batch_indices(cfg, step) for step in range(10)])  # 4 epochs
    for epoch in range(4):
        assert sorted(stream[10 * epoch:10 * (epoch + 1)]) == list(range(10))
    np.testing.assert_array_equal(train.batch_indices(cfg, 7), train.batch_indices(cfg, 7))


def test_loss_standard_error_is_over_images():
    rng = np.random.default_rng(0)
    per_image = rng.random(5)
    ids = np.arange(40) % 5  # each image 8 times, with noise around its own loss
    losses = per_image[ids] + 0.01 * rng.standard_normal(40)
    mean, sem = evaluate.mean_and_sem(losses, ids)
    image_means = [losses[ids == i].mean() for i in range(5)]
    assert mean == pytest.approx(losses.mean())
    assert sem == pytest.approx(np.std(image_means, ddof=1) / np.sqrt(5))
    assert sem > 2 * losses.std(ddof=1) / np.sqrt(40)  # far above the naive 40-sample error
    distinct = rng.random(30)
    assert evaluate.mean_and_sem(distinct, np.arange(30))[1] == pytest.approx(distinct.std(ddof=1) / np.sqrt(30))


def test_eval_steps_are_log_spaced_and_end_at_the_last_step():
    cfg = train.Config(steps=100_000, first_eval=100, num_evals=4, num_sample_evals=4)
    assert train.eval_steps(cfg) == [100, 1000, 10000, 100000] == train.sample_eval_steps(cfg)
    cfg = train.Config(steps=100_000, first_eval=100, num_evals=31, num_sample_evals=4)
    assert train.sample_eval_steps(cfg) == [100, 1000, 10000, 100000]  # a log-spaced subset
    assert set(train.sample_eval_steps(cfg)) <= set(train.eval_steps(cfg))


def test_a_run_writes_config_log_checkpoint_and_samples(tiny_config):
    log = train.train(tiny_config)
    run = Path(tiny_config.run_dir)
    saved = json.loads((run / "config.json").read_text())
    assert saved["base_channels"] == 8 and saved["channel_mult"] == [1, 2]
    with np.load(run / "log.npz") as f:
        assert f["step"].tolist() == [3, 6] == train.eval_steps(tiny_config)
        assert f["train_loss_bins"].shape == (2, 10)
        for key in ("train_loss", "test_loss", "train_loss_sem", "mem_ratio_pixels",
                    "swd_pixels_train", "swd_pixels_test", "fid_pixels_test"):
            assert f[key].shape == (2,) and np.isfinite(f[key]).all(), key
        np.testing.assert_allclose(f["test_loss"], log["test_loss"])
        # FID's sample counts, on which its bias depends
        assert f["fid_count_generated"].tolist() == [8, 8] and f["fid_count_train"].tolist() == [8, 8]
        assert f["fid_count_test"].tolist() == [16, 16]
    assert (run / "samples" / "step_0000006.png").exists()
    with np.load(run / "samples" / "step_0000006.npz") as f:
        assert f["samples"].shape == (4, 8, 8, 3) and f["nearest_pixels"].shape == (4, 8, 8, 3)
    with np.load(run / "checkpoint.npz") as f:
        assert int(f["state['step']"]) == 6


def test_evaluation_never_changes_the_training(tiny_config, tmp_path):
    """Two runs that differ only in what and how much they evaluate (as the cpu and cpu-dense
    presets do) end with bit-identical parameters and EMA: evaluation reads the state and draws
    from its own random stream, so one training can be compared under two schedules."""
    train.train(tiny_config)
    dense = dataclasses.replace(tiny_config, run_dir=str(tmp_path / "dense"), num_samples=16, swd_samples=16,
                                num_sample_evals=2, eval_train_size=16, num_test=32, distance_images=16)
    train.train(dense)
    with np.load(Path(tiny_config.run_dir) / "checkpoint.npz") as f, np.load(Path(dense.run_dir) / "checkpoint.npz") as g:
        state = [k for k in f if k.startswith(("state['params']", "state['ema']"))]
        assert len(state) > 20
        for key in state:
            np.testing.assert_array_equal(f[key], g[key], err_msg=key)


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_config, monkeypatch):
    make = train.make_train_step

    def poisoned(cfg):  # from step 4 on, the loss is NaN
        step_fn = make(cfg)

        def step(state, *batch):
            state, loss = step_fn(state, *batch)
            return state, np.where(np.asarray(state["step"]) > 4, np.nan, np.asarray(loss))
        return step

    monkeypatch.setattr(train, "make_train_step", poisoned)
    with pytest.raises(FloatingPointError, match="loss is nan at step 4: training diverged"):
        train.train(dataclasses.replace(tiny_config, checkpoint_minutes=0.0))  # a checkpoint every step
    with np.load(Path(tiny_config.run_dir) / "checkpoint.npz") as f:
        assert int(f["state['step']"]) == 4  # the last step with a finite loss
        assert f["log/step"].tolist() == [3]


def test_two_devices_give_the_same_training_as_one(tmp_path):
    one = run_train(tmp_path / "one", devices=1, env=FLOAT64)
    two = run_train(tmp_path / "two", devices=2, env=FLOAT64)
    finish(one), finish(two)
    assert_same_training(tmp_path / "one", tmp_path / "two")


def test_two_processes_give_the_same_training_as_one(tmp_path):
    """Multi-host: two processes with one CPU device each, through jax.distributed."""
    port = 20000 + os.getpid() % 20000
    common = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2", **FLOAT64}
    procs = [run_train(tmp_path / "multi", env={**common, "JAX_PROCESS_ID": str(i)}) for i in range(2)]
    for proc in procs:
        finish(proc)
    finish(run_train(tmp_path / "single", devices=2, env=FLOAT64))  # after the pair: 2 cores, 2 processes
    assert_same_training(tmp_path / "single", tmp_path / "multi")


def test_a_killed_run_resumes_with_nothing_lost_or_repeated(tmp_path):
    # the reference first: started side by side, the victim could finish (with a warm
    # compilation cache) while we wait for the reference, before it is ever killed
    finish(run_train(tmp_path / "reference", steps=40, num_evals=6, first_eval=2))
    victim = run_train(tmp_path / "victim", steps=40, num_evals=6, first_eval=2, checkpoint_minutes=0.0)
    log_file = tmp_path / "victim" / "log.npz"
    deadline = time.time() + 240
    while time.time() < deadline:  # kill -9 once a few evaluations are logged
        if log_file.exists() and len(np.load(log_file)["step"]) >= 3:
            break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert len(np.load(log_file)["step"]) < 6, "the run finished before it was killed"
    out = finish(run_train(tmp_path / "victim", steps=40, num_evals=6, first_eval=2, checkpoint_minutes=0.0))
    assert "resuming" in out
    with np.load(tmp_path / "reference" / "log.npz") as ref, np.load(log_file) as got:
        assert got["step"].tolist() == ref["step"].tolist()  # no row lost or duplicated
        for key in ("train_loss", "test_loss", "swd_pixels_test"):
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-4, atol=1e-6, err_msg=key)


# --- review findings: resuming, config checks, feature spaces, random streams -----------------

def stop_after_first_evaluation(cfg):
    """Train cfg until its first evaluation is checkpointed, then stop (as a killed run would)."""
    def evaluate_once(state, step, samples):
        if step > train.eval_steps(cfg)[0]:
            raise KeyboardInterrupt
        return {"step": step, "train_loss": 1.0}
    with pytest.raises(KeyboardInterrupt):
        train.train(cfg, evaluate_fn=evaluate_once)


def test_a_moved_run_resumes_where_it_now_is(tiny_config, tmp_path, monkeypatch):
    stop_after_first_evaluation(dataclasses.replace(tiny_config, checkpoint_minutes=0.0))
    original, moved = Path(tiny_config.run_dir), tmp_path / "moved" / "run"
    shutil.copytree(original, moved)
    before = {p.name: p.stat().st_mtime_ns for p in original.iterdir()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a relative --run_dir, from another working directory
    cfg, status = train.resolve_run(train.parse_flags(["--run_dir", "../moved/run"]))
    assert cfg.run_dir == "../moved/run" and cfg.lr == tiny_config.lr and status == "resume"
    train.train(train.parse_flags(["--run_dir", "../moved/run"]))
    assert np.load(moved / "log.npz")["step"].tolist() == train.eval_steps(tiny_config)
    assert json.loads((moved / "config.json").read_text())["run_dir"] == "../moved/run"
    assert {p.name: p.stat().st_mtime_ns for p in original.iterdir()} == before  # untouched


def started_run(cfg, step=1):
    """cfg's run directory as a run that has checkpointed at `step` (a fake one-array state)."""
    rundir.write_config(cfg.run_dir, dataclasses.asdict(cfg))
    rundir.save_checkpoint(cfg.run_dir, {"['step']": np.array(step, np.int32)}, {}, 0.0)


def test_flags_on_resume_must_agree_with_the_run(tiny_config):
    started_run(tiny_config)
    run = tiny_config.run_dir
    resolve = lambda *flags: train.resolve_run(train.parse_flags(["--run_dir", run, *flags]))
    assert resolve("--tick_seconds", "5") == (dataclasses.replace(tiny_config, tick_seconds=5.0), "resume")  # free
    assert resolve("--lr", str(tiny_config.lr))[0].lr == tiny_config.lr  # the same value
    with pytest.raises(rundir.RunDirError, match=r"another config \(lr: 0.001 -> 0.5\)"):
        resolve("--lr", "0.5")
    started_run(tiny_config, step=tiny_config.steps)
    assert resolve()[1] == "complete"


def test_another_config_in_the_same_run_dir_is_refused(tiny_config):
    started_run(tiny_config)
    other = dataclasses.replace(tiny_config, lr=0.5)
    with pytest.raises(rundir.RunDirError, match=r"another config \(lr: 0.001 -> 0.5\)"):
        train.train(other)


def test_a_start_that_failed_before_its_first_checkpoint_binds_nothing(tiny_config, capsys):
    bad = dataclasses.replace(tiny_config, dataset=str(Path(tiny_config.run_dir).parent / "no_such_folder"))
    with pytest.raises(train.data.DataError):
        train.train(bad)
    assert json.loads((Path(tiny_config.run_dir) / "config.json").read_text())["dataset"] == bad.dataset
    assert train.resolve_run(dataclasses.asdict(tiny_config)) == (tiny_config, "new")  # the corrected retry
    # `train.py --run_dir X` alone starts it again as saved
    assert train.resolve_run({"run_dir": tiny_config.run_dir})[0].dataset == bad.dataset


def test_a_run_saved_before_a_field_existed_resumes_with_its_default(tiny_config):
    started_run(tiny_config)
    path = Path(tiny_config.run_dir) / "config.json"
    fields = json.loads(path.read_text())
    del fields["norm_groups"]  # as a config.json written before norm_groups was a field
    path.write_text(json.dumps(fields))
    assert train.resolve_run(dataclasses.asdict(tiny_config))[0] == tiny_config
    with pytest.raises(rundir.RunDirError, match=r"another config \(norm_groups: 32 -> 0\)"):
        train.resolve_run(dataclasses.asdict(dataclasses.replace(tiny_config, norm_groups=0)))


@pytest.mark.parametrize("flags, message", [
    (["--num_train", "1"], "num_train=1, eval_train_size=512: need at least 2"),
    (["--preset", "cpu", "--image_size", "17"], "image_size 17 does not halve 1 times"),
    (["--preset", "cpu", "--base_channels", "100", "--head_dim", "64"], "200 channels at 8x8 do not split"),
    (["--lr", "0"], "lr=0.0 must be finite and > 0"),
    (["--lr", "inf"], "lr=inf must be finite and > 0"),
    (["--guidance", "nan"], "guidance=nan must be finite"),
    (["--checkpoint_minutes", "nan"], "checkpoint_minutes=nan and tick_seconds=10.0 finite"),
    (["--run_dir", ""], "run_dir='', data_dir=.*must not be empty"),
    (["--feature_spaces", "pixels,clip"], r"unknown feature_spaces \['clip'\]"),
    (["--batch_size", "0"], "batch_size=0: must be at least 1"),
    (["--preset", "cpu", "--patch_size", "17"], "patch_size=17 must be between 1 and image_size=16"),
    (["--distance_images", "5000", "--num_test", "100"], "distance_images=5000 between 0 and num_test=100"),
])
def test_settings_that_cannot_run_are_one_line_errors(flags, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(train.ConfigError, match=message) as error:
        train.resolve_run(train.parse_flags(flags))
    assert "\n" not in str(error.value)


def test_the_command_line_prints_user_errors_as_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), *flags(run_dir=str(tmp_path / "run"), batch_size=3)],
                          env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "error: batch_size 3 does not split over 2 devices: choose a multiple of 2"]


def test_feature_spaces_are_fixed_when_a_run_starts(tiny_config, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    cfg = dataclasses.replace(tiny_config, feature_spaces=("pixels", "sscd"), weights_dir=str(weights))
    with pytest.raises(features.WeightsError, match="no weights for sscd in .*--allow_missing_weights true to "
                                                    "measure in pixels only"):
        train.fix_feature_spaces(cfg, "new")  # a run without its weights is refused at the start
    allowed = dataclasses.replace(cfg, allow_missing_weights=True)
    assert train.fix_feature_spaces(allowed, "new").feature_spaces == ("pixels",)
    # SSCD weights appear later: a resumed run keeps the spaces it started with
    open(features.weight_paths("sscd", weights)[1], "wb").close()
    assert train.fix_feature_spaces(dataclasses.replace(allowed, feature_spaces=("pixels",)), "resume").feature_spaces == ("pixels",)
    assert train.fix_feature_spaces(cfg, "new").feature_spaces == ("pixels", "sscd")
    # a run that started with SSCD cannot resume once its weights are gone
    os.remove(features.weight_paths("sscd", weights)[1])
    with pytest.raises(features.WeightsError, match="has measured in sscd since its start.*put them back"):
        train.fix_feature_spaces(cfg, "resume")


def test_an_installed_accelerator_that_jax_does_not_see_is_refused(monkeypatch):
    monkeypatch.setattr(parallel, "ACCELERATOR_PACKAGES", ("numpy",))  # as if numpy were jax-cuda12-plugin
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    with pytest.raises(parallel.AcceleratorError, match="numpy is installed but jax sees only the CPU.*JAX_PLATFORMS=cpu"):
        parallel.check_accelerator()
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    parallel.check_accelerator()  # the CPU, on purpose


def test_the_accelerator_requirements_pin_the_jax_of_the_runtime_requirements():
    root = REPO
    pins = dict(line.split("==") for line in (root / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    for name, extra in (("requirements-cuda.txt", "jax[cuda13]"), ("requirements-tpu.txt", "jax[tpu]")):
        lines = (root / name).read_text().splitlines()
        assert "-r requirements.txt" in lines and f"{extra}=={pins['jax']}" in lines, name


def test_random_streams_of_different_seeds_and_purposes_never_coincide():
    keys = {(seed, purpose): tuple(np.asarray(jax.random.key_data(train.rng_stream(seed, purpose))).ravel())
            for seed in range(5) for purpose in train.PURPOSES}
    assert len(set(keys.values())) == len(keys)
    cfg = train.Config(**TINY)
    assert not np.array_equal(train.batch_indices(cfg, 0),
                              train.batch_indices(dataclasses.replace(cfg, seed=1), 0))


def test_no_log_is_written_before_the_first_evaluation(tiny_config):
    rundir.save_log(tiny_config.run_dir, {})
    assert not (Path(tiny_config.run_dir) / "log.npz").exists()


def test_a_second_process_on_a_run_dir_and_a_damaged_checkpoint_are_refused(tiny_config):
    with rundir.lock(tiny_config.run_dir):
        with pytest.raises(rundir.RunDirError, match="another process is training in"):
            with rundir.lock(tiny_config.run_dir):  # its own open file: flock refuses it as another process's
                pass
    with rundir.lock(tiny_config.run_dir):  # released when the first ended
        pass
    started_run(tiny_config)
    path = Path(tiny_config.run_dir) / "checkpoint.npz"
    whole = path.read_bytes()
    for damage in (whole[:len(whole) // 2], b"\0" * len(whole)):  # truncated, zeroed by a full disk
        path.write_bytes(damage)
        with pytest.raises(rundir.RunDirError, match=r"checkpoint.npz is damaged \(.*delete it to restart"):
            train.resolve_run(dataclasses.asdict(tiny_config))


def test_a_training_set_that_changed_between_starts_is_refused(tiny_config):
    run = tiny_config.run_dir
    images = np.zeros((4, 2, 2, 3), np.uint8)
    before = {"train": rundir.images_fingerprint(images, np.arange(4)), "test": "t"}
    rundir.check_dataset(run, before, "new")
    rundir.check_dataset(run, before, "resume")  # the same images
    images[1, 0, 0, 2] = 1  # one pixel of one image
    after = {"train": rundir.images_fingerprint(images, np.arange(4)), "test": "t"}
    with pytest.raises(rundir.RunDirError, match="the train images of .* are not those it started with"):
        rundir.check_dataset(run, after, "resume")
    relabelled = rundir.images_fingerprint(np.zeros((4, 2, 2, 3), np.uint8), np.arange(1, 5))
    assert relabelled != before["train"]


def test_a_complete_run_rewrites_its_damaged_log_from_the_checkpoint(tiny_config, capsys):
    log = train.train(tiny_config)
    path = Path(tiny_config.run_dir) / "log.npz"
    path.write_bytes(b"")  # emptied after the run ended
    again = train.train(tiny_config)  # complete: nothing trains, the log is written anew
    assert "complete" in capsys.readouterr().out
    with np.load(path) as repaired:
        assert repaired["step"].tolist() == [int(s) for s in log["step"]] == [int(s) for s in again["step"]]
        np.testing.assert_array_equal(repaired["test_loss"], np.asarray(log["test_loss"]))


def test_a_run_dir_that_cannot_be_written_is_refused_before_training(tiny_config, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    cfg = dataclasses.replace(tiny_config, run_dir=str(blocker / "run"))  # a directory inside a file
    with pytest.raises(rundir.RunDirError, match=r"cannot write to .*a_file/run .*choose a writable --run_dir"):
        train.train(cfg)
