"""What a sweep leaves in git: a small record per sweep, docs/results/<preset>-<axis>/.

    python report.py publish sweeps/cpu-batch   # this file's publish(): the sweep's record

sweeps/ is not in git and a fresh clone starts without it, so what a sweep found is kept as a
record: record.json holds the summary table's rows and fits, each run's curves (losses, their
standard errors, the normalized gap and the distances to the exact references at every
evaluation; copies and SW at every sample evaluation), what twins.py found for each run with a
twin, and where the sweep ran (CPU, cores, OS, python, jax and numpy versions, the commit and
whether the tree had uncommitted changes, from each run's provenance.json; the training time
from the logs); beside it the axis figures, as PNG. A record is written whole or not at all,
and a folder that is damaged, or holds another preset's axis, is a one-line RecordError.
`python bench.py --suite --publish` writes docs/results/bench/record.json, and `python report.py
plan` the paper preset's cost plan (publish_plan). report.py writes the documents from the records.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

import metrics
import rundir
import study
import sweep
import train

RESULTS_DIR = Path(__file__).resolve().parent / "docs" / "results"


class RecordError(ValueError):
    """A record folder that cannot be read: the message names the folder and the fix."""


def finite(x):
    """JSON has no NaN: None stands for a number that is undefined (no copies, no minimum)."""
    return float(x) if x is not None and np.isfinite(x) else None


def numbers(values):
    """An array as nested lists of floats, None where it is not finite."""
    values = np.asarray(values, float)
    return [finite(v) for v in values] if values.ndim == 1 else [numbers(row) for row in values]


def run_curves(log, mem_key, swd_key):
    """The curves a reader of the record may want to redraw or test a rule on: losses (with
    their standard errors and the normalized gap), copies and SW, and the distances to the
    exact references by noise bin ((E, 10) each) with the references' distances to each other
    (one row: they are constants)."""
    curves = {"step": metrics.steps_of(log, "train_loss"), "train_loss": log["train_loss"],
              "test_loss": log["test_loss"], "train_loss_sem": log["train_loss_sem"],
              "test_loss_sem": log["test_loss_sem"], "gap_normalized": log["gap_normalized"],
              "sample_step": metrics.steps_of(log, mem_key), "mem": log[mem_key],
              "swd_test": log[swd_key], "swd_train": log.get(swd_key.replace("_test", "_train"), [])}
    for key in ("elapsed_seconds", "distance_seconds"):
        if key in log:
            curves[key] = log[key]
    curves |= {key: log[key] for key in log if key.startswith("distance_") and key.endswith("_bins")}
    curves |= {key: log[key][0] for key in log if "_distance_" in key and key.endswith("_bins")}
    return {key: numbers(values) for key, values in curves.items()}


def twin_comparison(run_dir):
    """What twins.py found for a run and its twin (run_dir/twins.npz), with the twin's tau_mem;
    None for a run without a twin."""
    path = Path(run_dir) / "twins.npz"
    if not path.exists():
        return None
    with np.load(path) as f:
        result = {key: numbers(f[key]) for key in ("step", "similarity", "similarity_chance", "mem", "mem_twin")}
        twin = Path(str(f["twin"]))
    twin_dir = twin if twin.is_absolute() else Path(run_dir).parent / twin.name  # beside the run, in a sweep
    twin_log = metrics.load_log(twin_dir)
    return result | {"twin": twin.name, "twin_dir": twin_dir,
                     "twin_tau_mem": finite(metrics.memorization_time(twin_log)) if twin_log else None,
                     "twin_seconds": finite(twin_log["elapsed_seconds"][-1]) if "elapsed_seconds" in twin_log else None}


def where_it_ran(run_dirs):
    """The machines and commits of every start of every run (provenance.json), merged: a value
    shared by all starts, else the list of the values seen."""
    starts = [start for run_dir in run_dirs if (path := Path(run_dir) / "provenance.json").exists()
              for start in json.loads(path.read_text())]
    if not starts:
        return {"commit": "unknown (the runs predate provenance.json)"}
    merged = {}
    for key in ("cpu", "cores", "os", "devices", "python", "jax", "numpy", "commit", "uncommitted_changes"):
        values = list(dict.fromkeys(start.get(key) for start in starts))
        merged[key] = values[0] if len(values) == 1 else values
    return merged


def sweep_record(sweep_dir):
    """The record of a sweep directory (sweep.py's sweep.json, and one run directory per value)."""
    sweep_dir = Path(sweep_dir)
    try:
        meta = json.loads((sweep_dir / "sweep.json").read_text())
    except (OSError, ValueError) as err:
        raise RecordError(f"{sweep_dir} is not a sweep directory ({err}); give the --out of a sweep.py run, "
                          f"for example sweeps/cpu-batch") from None
    rows, curves, run_dirs, twin_pairs = [], {}, [], {}
    for name in meta["runs"]:
        run_dir = sweep_dir / name
        log = metrics.load_log(run_dir)
        if not log:
            continue
        cfg = json.loads((run_dir / "config.json").read_text())
        row = sweep.summary_row(name, cfg, log, meta["field"], meta["normalization"])
        rows.append({k: finite(v) if isinstance(v, (float, np.floating)) else v for k, v in row.items()}
                    | {"steps": cfg["steps"]})
        curves[name] = run_curves(log, row["mem_key"], row["swd_key"])
        run_dirs.append(run_dir)
        if (twins := twin_comparison(run_dir)) is not None:
            run_dirs.append(twins.pop("twin_dir"))  # where the twin ran is where the sweep ran too
            twin_pairs[name] = twins
    if not rows:
        raise RecordError(f"no run of {sweep_dir} has an evaluation yet; run the sweep first")
    record = {"kind": "sweep", "preset": meta["preset"], "axis": meta["axis"], "field": meta["field"],
              "normalization": meta["normalization"], "runs_planned": meta["runs"], "rows": rows, "curves": curves,
              "twins": twin_pairs, "ran_on": where_it_ran(run_dirs),
              "training_seconds": sum(c["elapsed_seconds"][-1] or 0 for c in curves.values() if "elapsed_seconds" in c)}
    if meta["field"] == "num_train":
        n = [r["value"] for r in rows]
        record["fit"] = {k: finite(v) for k, v in metrics.scaling_fit(n, [r["tau_mem"] or np.nan for r in rows]).items()}
        record["fit_tau_gen"] = {k: finite(v) for k, v in
                                 metrics.scaling_fit(n, [r["tau_gen"] or np.nan for r in rows]).items()}
    return record


def write_record(record, figures, dest):
    """Write record.json and copy the figures ({name in the record: path}) into dest, all or
    nothing: the folder is built beside dest under a temporary name, then swapped in."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        record = dict(record, figures=list(figures))
        for name, figure in figures.items():
            shutil.copyfile(figure, building / name)
        (building / "record.json").write_text(json.dumps(record, indent=1) + "\n")
        os.chmod(building, 0o755)
        old = dest.with_name(f".{dest.name}.old")
        if dest.exists():
            os.replace(dest, old)
        os.replace(building, dest)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return dest


def publish(sweep_dir, results_dir=RESULTS_DIR):
    """sweep_dir's record -> results_dir/<preset>-<axis>/ (record.json and the axis figures)."""
    record = sweep_record(sweep_dir)
    figures = {path.name: path for path in sorted((Path(sweep_dir) / "figures").glob("*.png"))}
    for name in record["twins"]:  # the paired samples of every twin pair, at the best step and the end
        if (path := Path(sweep_dir) / name / "figures" / "twins_samples.png").exists():
            figures[f"twins_samples_{name}.png"] = path
    dest = write_record(record, figures, Path(results_dir) / f"{record['preset']}-{record['axis']}")
    dirty = record["ran_on"].get("uncommitted_changes")
    print(f"published {dest}" + (" (from a tree with uncommitted changes)" if dirty else ""))
    return dest


# The cost plan METHODS.md shows, as tables: (axis, or None for the preset's default run,
# hardware, devices), all at PLAN_UTILIZATION
PLAN_TABLES = [(None, "H100", 1), ("data", "TPU-v5p", 16)]
PLAN_UTILIZATION = 0.4


def publish_plan(preset="paper", results_dir=RESULTS_DIR):
    """The cost plan of a preset as a record, docs/results/plan-<preset>/: PLAN_TABLES' tables
    as plan.py prints them, and the evaluation's share of every run of every axis of the preset
    and of its dense evaluation's default run (plan.py and sweep.py --plan compute each; nothing
    trains)."""
    import plan  # jax and the networks, only to publish a plan

    def named_configs(preset_name, axis):
        if axis is None:
            return [("run", train.make_config(dict(study.PRESETS[preset_name])))]
        return sweep.run_configs(preset_name, axis, Path("sweeps") / f"{preset_name}-{axis}", {})

    # each plan once: the evaluation's share does not depend on the hardware a table projects on
    hardware = {axis: (name, devices) for axis, name, devices in PLAN_TABLES}
    planned = {axis: plan.plan_table(named_configs(preset, axis), *hardware.get(axis, ("H100", 1)), PLAN_UTILIZATION)
               for axis in (None, *study.AXES[preset])}
    tables = [{"axis": axis, "hardware": name, "devices": devices, "lines": planned[axis][0]}
              for axis, name, devices in PLAN_TABLES]
    shares = {"run": planned[None][1]["run"], "axes": {axis: planned[axis][1] for axis in study.AXES[preset]}}
    if f"{preset}-dense" in study.PRESETS:
        shares["dense run"] = plan.plan_table(named_configs(f"{preset}-dense", None))[1]["run"]
    record = {"kind": "plan", "preset": preset, "command": f"python report.py plan {preset}",
              "utilization": PLAN_UTILIZATION, "tables": tables, "shares": shares, "ran_on": rundir.machine()}
    dest = write_record(record, {}, Path(results_dir) / f"plan-{preset}")
    print(f"published {dest}")
    return dest


def load_records(results_dir=RESULTS_DIR):
    """{folder name: record} of every record folder, each checked: its record.json is whole,
    it is the preset and axis its name says, and its figures are there."""
    records = {}
    for folder in sorted(p for p in Path(results_dir).glob("*") if p.is_dir() and not p.name.startswith(".")):
        try:
            record = json.loads((folder / "record.json").read_text())
        except (OSError, ValueError) as err:
            raise RecordError(f"{folder}: no readable record.json ({type(err).__name__}); publish it again "
                              f"(python report.py publish SWEEP_DIR) or delete the folder") from None
        kind = record.get("kind")
        expected = ("bench" if kind == "bench" else f"plan-{record.get('preset')}" if kind == "plan"
                    else f"{record.get('preset')}-{record.get('axis')}")
        if folder.name != expected:
            raise RecordError(f"{folder} holds the record of {expected}; move it to {folder.parent / expected}")
        if missing := [f for f in record.get("figures", []) if not (folder / f).exists()]:
            raise RecordError(f"{folder} lacks {', '.join(missing)}; publish it again")
        records[folder.name] = record
    return records
