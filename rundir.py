"""A run directory: the files a run keeps, and the one decision of what a start does with them.

    config.json       the resolved config (train.Config's fields)
    provenance.json   one entry per start: step, time, commit, machine, devices, jax version
    dataset.json      fingerprints of the training and test images the run started with
    log.npz           flat metric log, arrays indexed by evaluation (numpy alone reads it)
    checkpoint.npz    the training state and the log so far
    references.npz    the exact references (evaluate.py), samples/ and figures/
    .lock             held while a process trains in the directory

decide(run_dir, requested, defaults) says what a start does: 'new', 'resume', 'complete', or
refuses with a RunDirError (one line: what differs, and the fix). Every file is written with
files.atomic_write, so a killed run leaves the old file or the new one, never half of one;
the log also travels inside the checkpoint, so a resumed run neither loses nor repeats a row.
This file knows nothing of JAX: states are flat {name: array} dicts.
"""
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import platform
import subprocess
import zipfile
from pathlib import Path

import numpy as np

import files

# Fields that follow the command line when a run is resumed: where things are, how often it
# reports. Every other field is the run's own.
FREE_ON_RESUME = {"run_dir", "data_dir", "weights_dir", "checkpoint_minutes", "tick_seconds"}
DAMAGED = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)  # what np.load raises on a bad file


class RunDirError(Exception):
    """A run directory that cannot be used as asked; the message names the fix."""


def saved_config(run_dir, defaults):
    """The fields of config.json (lists back to tuples) over `defaults`, or None if there is
    none. A field the file lacks was added after the run started, which ran as its default."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunDirError(f"{path} is unreadable ({err}); delete it to start the run anew") from None
    return {**defaults, **{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}}


def checkpoint_step(run_dir):
    """The step of run_dir's checkpoint, None if it has none."""
    path = Path(run_dir) / "checkpoint.npz"
    if not path.exists():
        return None
    try:
        with np.load(path) as f:
            return int(f["state['step']"])
    except DAMAGED as err:
        raise damaged(path, err) from None


def damaged(path, err):
    return RunDirError(f"{path} is damaged ({type(err).__name__}: {err}); delete it to restart the run from step 0, "
                       f"or put back a copy")


def decide(run_dir, requested, defaults, fix=None, before_added=None):
    """(fields, status) of a start with the `requested` fields (a dict: the command line's
    flags, or every field of a config) in run_dir, `defaults` the fields' defaults, and
    `before_added` the values that reproduce what a run did before a field existed (where that
    is not the default: a measurement the run never made):
    - 'new': no checkpoint. A config.json without a checkpoint is a start that never reached
      its first checkpoint: it binds nothing; asked for with nothing but FREE_ON_RESUME
      fields (`train.py --run_dir X`), it is started again as saved;
    - 'resume' or 'complete' (its step has reached `steps`): the saved fields, with the
      FREE_ON_RESUME ones from `requested`. Any other requested field must equal the saved one,
      or RunDirError says what differs and `fix`. feature_spaces may name more spaces than
      the run has: they are the ones asked for, the saved ones those fixed at its start."""
    saved, step = saved_config(run_dir, {**defaults, **(before_added or {})}), checkpoint_step(run_dir)
    if step is None:
        only_free = set(requested) <= FREE_ON_RESUME
        return ({**saved, **requested} if saved and only_free else {**defaults, **requested}), "new"
    if saved is None:
        raise RunDirError(f"{run_dir} holds a checkpoint but no config.json; put the config back, or delete the "
                          f"directory to start anew")
    merged, diff = dict(saved), []
    for name, value in requested.items():
        if name in FREE_ON_RESUME:
            merged[name] = value
        elif name == "feature_spaces" and set(saved[name]) <= set(value):
            continue
        elif saved.get(name) != value:
            diff.append(f"{name}: {saved.get(name)!r} -> {value!r}")
    if diff:
        fix = fix or f"pick a new --run_dir, or resume with `python train.py --run_dir {run_dir}` alone"
        raise RunDirError(f"{run_dir} holds a run with another config ({'; '.join(diff)}); {fix}")
    return merged, "complete" if step >= merged["steps"] else "resume"


def write_config(run_dir, fields):
    with files.atomic_write(Path(run_dir) / "config.json", "w") as file:
        file.write(json.dumps(fields, indent=2) + "\n")


@contextlib.contextmanager
def lock(run_dir):
    """Held while training in run_dir: a second process on the same directory is refused
    (its checkpoints would overwrite this one's). Also the first write, so a directory that
    cannot be written is refused before any training."""
    path = Path(run_dir) / ".lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "w")
    except OSError as err:
        raise RunDirError(f"cannot write to {run_dir} ({err.strerror}); choose a writable --run_dir") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(f"another process is training in {run_dir}; wait for it to end, or stop it") from None
        yield


# --- checkpoints and logs -------------------------------------------------------------------


def save_checkpoint(run_dir, state, log, elapsed):
    """state: flat {name: array}; the log and the run's elapsed seconds ride along."""
    if not all(np.isfinite(a).all() for a in state.values() if a.dtype.kind == "f"):
        raise FloatingPointError("non-finite parameters: not overwriting the last good checkpoint")
    arrays = {f"state{name}": a for name, a in state.items()}
    arrays.update({f"log/{k}": np.asarray(v) for k, v in log.items()}, elapsed_seconds=np.float64(elapsed))
    with files.atomic_write(Path(run_dir) / "checkpoint.npz") as file:
        np.savez(file, **arrays)


def load_checkpoint(run_dir):
    """(flat state {name: array}, log {key: list}, elapsed seconds) of run_dir's checkpoint."""
    path = Path(run_dir) / "checkpoint.npz"
    try:
        with np.load(path) as f:
            arrays = dict(f)
    except DAMAGED as err:
        raise damaged(path, err) from None
    state = {k[len("state"):]: v for k, v in arrays.items() if k.startswith("state")}
    log = {k[len("log/"):]: list(v) for k, v in arrays.items() if k.startswith("log/")}
    return state, log, float(arrays.get("elapsed_seconds", 0.0))


def save_log(run_dir, log):
    if log:  # before the first evaluation there is nothing to write
        with files.atomic_write(Path(run_dir) / "log.npz") as file:
            np.savez(file, **{k: np.asarray(v) for k, v in log.items()})


# --- where the run was made, and on which data ------------------------------------------------


def git_commit():
    """(commit, whether tracked files differ from it) of the code running, or ('unknown', None)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return (commit, bool(status)) if commit else ("unknown", None)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine():
    """Where code runs: {'commit', 'uncommitted_changes', 'cpu', 'cores', 'os', 'python'}."""
    commit, dirty = git_commit()
    return {"commit": commit, "uncommitted_changes": dirty, "cpu": cpu_model(), "cores": os.cpu_count(),
            "os": platform.platform(), "python": platform.python_version()}


def record_start(run_dir, step, devices, versions):
    """Append this start to provenance.json: from which step, when, on which code and machine.
    devices: e.g. '2 x cpu (cpu)'; versions: {package: version}."""
    path = Path(run_dir) / "provenance.json"
    starts = json.loads(path.read_text()) if path.exists() else []
    starts.append({"from_step": step, "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                   **machine(), "devices": devices, **versions})
    with files.atomic_write(path, "w") as file:
        file.write(json.dumps(starts, indent=2) + "\n")


def images_fingerprint(images, labels):
    return hashlib.sha256(np.ascontiguousarray(images).tobytes() + np.asarray(labels, np.int64).tobytes()).hexdigest()


def check_dataset(run_dir, fingerprints, status):
    """A new run records the fingerprints of its images ({split: sha256}); a resumed one must
    see the same, or its training set changed under it (an image folder edited between starts)."""
    path = Path(run_dir) / "dataset.json"
    if status == "new" or not path.exists():
        with files.atomic_write(path, "w") as file:
            file.write(json.dumps(fingerprints, indent=2) + "\n")
        return
    if (saved := json.loads(path.read_text())) != fingerprints:
        changed = [split for split in fingerprints if saved.get(split) != fingerprints[split]]
        raise RunDirError(f"the {' and '.join(changed)} images of {run_dir} are not those it started with (their "
                          f"fingerprints differ): restore the data set, or start a new --run_dir")
