"""The study's results, written by the code: a small committed record per sweep, and
docs/RESULTS.md (with the README's findings table) generated from the records alone.

    python report.py publish sweeps/cpu-batch   # the sweep's record -> docs/results/cpu-batch/
    python report.py                            # docs/results/* -> docs/RESULTS.md, README.md's findings

sweeps/ is not in git and a fresh clone starts without it, so what a sweep found is kept as a
record: docs/results/<preset>-<axis>/record.json holds the summary table's rows and fits,
each run's curves (losses and the distances to the exact references at every evaluation;
copies and SW at every sample evaluation), what twins.py found for each run with a twin, and
where the sweep ran (CPU, cores, OS, python, jax and numpy versions, the commit and whether the
tree had uncommitted changes, from each run's provenance.json; the training time from the
logs); beside it the axis figures, as PNG. `python bench.py --suite --publish` writes
docs/results/bench/record.json. One axis can be re-run and re-published on its own; the
document is regenerated from whatever records there are; the paper's findings get a verdict,
and the pre-memorization questions an answer, each by the rule stated beside it (findings.py).
Every number in the document is written here.
"""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import files
import findings
import metrics
import study
import sweep

RESULTS_DIR = Path(__file__).resolve().parent / "docs" / "results"
DOCUMENT = RESULTS_DIR.parent / "RESULTS.md"
README = RESULTS_DIR.parents[1] / "README.md"
AXIS_TITLES = {"batch": "Batch size", "data": "Dataset size", "model": "Model size", "lr": "Learning rate"}
PRE_MEMORIZATION_FIGURES = ("distances_", "twins")  # shown in their own section, not the axis'


class RecordError(ValueError):
    """A record folder that cannot be read: the message names the folder and the fix."""


# --- records --------------------------------------------------------------------------------


def finite(x):
    """JSON has no NaN: None stands for a number that is undefined (no copies, no minimum)."""
    return float(x) if x is not None and np.isfinite(x) else None


def numbers(values):
    """An array as nested lists of floats, None where it is not finite."""
    values = np.asarray(values, float)
    return [finite(v) for v in values] if values.ndim == 1 else [numbers(row) for row in values]


def run_curves(log, mem_key, swd_key):
    """The curves a reader of the record may want to redraw or test a rule on: losses (with
    their standard errors and the normalized gap), copies and SW, and the distances to the exact references by noise bin ((E, 10) each) with the
    references' distances to each other (one row: they are constants)."""
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
        expected = "bench" if record.get("kind") == "bench" else f"{record.get('preset')}-{record.get('axis')}"
        if folder.name != expected:
            raise RecordError(f"{folder} holds the record of {expected}; move it to {folder.parent / expected}")
        if missing := [f for f in record.get("figures", []) if not (folder / f).exists()]:
            raise RecordError(f"{folder} lacks {', '.join(missing)}; publish it again")
        records[folder.name] = record
    return records


# --- the document ---------------------------------------------------------------------------


def number(x, spec=".4g"):
    return "-" if x is None else format(x, spec)


def axis_section(name, record):
    field = record["field"]
    lines = [f"## {AXIS_TITLES.get(record['axis'], record['axis'])}", "",
             f"`python sweep.py --axis {record['axis']} --preset {record['preset']}`, then "
             f"`python report.py publish sweeps/{name}`.", "",
             f"| run | {field} | steps | tau_mem | in T | tau_gen | copy onset | mem rate/dec | best SW | at step | "
             f"copies there | memorizer | Gaussian | final copies |", "|" + "---|" * 14]
    for r in record["rows"]:
        lines.append(f"| {r['name']} | {r['value']:g} | {r['steps_done']} | {number(r['tau_mem'], '.0f')} | "
                     f"{number(r['tau_mem_T'], '.0f')} | {number(r.get('tau_gen'), '.0f')} | "
                     f"{number(r['copy_onset'], '.0f')} | "
                     f"{number(r['memorization_rate'], '.3f')} | {number(r['best_swd'])} | "
                     f"{number(r['best_swd_step'], '.0f')} | {number(r['mem_at_best_swd'], '.2f')} | "
                     f"{number(r['memorizer_swd'])} | {number(r['gaussian_swd'])} | {r['final_mem']:.2f} |")
    first = record["rows"][0]
    lines += ["", f"Copies: `{first['mem_key']}`; SW: `{first['swd_key']}`, its best at or before tau_mem, and "
              f"the copy fraction at that evaluation; tau_gen: the first sample step within "
              f"{metrics.GENERATION_TOLERANCE:.0%} of that best; memorizer and Gaussian: the same SW of the exact "
              f"references' samples. T normalizes by " + ", ".join(f"{k} = {v:g}" for k, v in record["normalization"].items())
              + "."]
    if fit := record.get("fit"):
        lines += ["", f"tau_mem against N: log-log slope {number(fit['loglog_slope'], '.2f')} (1 is proportional); "
                      f"through the origin tau_mem = {number(fit['origin_slope'], '.3g')} N, "
                      f"R² = {number(fit['origin_r2'], '.2f')}."]
        if gen := record.get("fit_tau_gen"):
            lines += ["", f"tau_gen against N: log-log slope {number(gen['loglog_slope'], '.2f')} (0: the same at "
                          f"every N; Bonnaire et al. find it independent of N while tau_mem grows with N). It is read "
                          f"off the sample evaluations alone, log-spaced over runs whose length grows with N, so it "
                          f"can only fall on their grid."]
    lines += [""] + [f"![{figure}](results/{name}/{figure})" for figure in record["figures"]
                     if not figure.startswith(PRE_MEMORIZATION_FIGURES)]
    lines += ["", ran_on(record["ran_on"], record.get("training_seconds")), ""]
    return lines

def pre_memorization_section(records):
    """What the network learns before tau_mem: per axis whose record logged the distances, the
    distances to the exact references around tau_mem and at the end, the nearest reference by
    noise band; per axis with twins, whether disjoint twins agree before tau_mem and part after."""
    lines = ["## What the network learns before tau_mem", "",
             "Two instruments (METHODS.md): the relative distance of the network's velocity to each exact reference "
             "on held-out inputs, |v - v_ref|² / |v_ref|², per noise bin of t (0: noise, 1: data), here averaged over "
             "the bins of a band (" + ", ".join(f"{band} t in [{b.start / 10:.1f}, {b.stop / 10:.1f})"
                                               for band, b in metrics.NOISE_BANDS.items())
             + "); and twins, the same run trained on the next N images (`python sweep.py --axis data --twin`), "
             "sampled from the same noise, compared by the pixel correlation of each pair of samples.", ""]
    shown = [axis for axis in AXIS_TITLES if f"cpu-{axis}" in records
             and findings.distance_answers(records[f"cpu-{axis}"], "middle")]
    for axis in shown:
        record = records[f"cpu-{axis}"]
        lines += [f"### {AXIS_TITLES[axis]}", ""] + distance_lines(record, findings.AXIS_FIELDS[axis])
        lines += twin_lines(record, findings.AXIS_FIELDS[axis])
        lines += [""] + [f"![{figure}](results/cpu-{axis}/{figure})" for figure in record["figures"]
                         if figure.startswith(PRE_MEMORIZATION_FIGURES)] + [""]
    if not shown:
        lines += ["No record holds the distances yet: `python sweep.py --axis data --twin --preset cpu`, then "
                  "`python report.py publish sweeps/cpu-data`.", ""]
    return lines


def distance_lines(record, field):
    """The distances of each run in the middle band, the nearest reference in every band, the
    two rules' counts, where each reference is closest, and what the distances cost."""
    middle, names = findings.distance_answers(record, "middle"), metrics.REFERENCES
    lines = ["Middle band, at the last evaluation at or before tau_mem and at the end:", "",
             f"| run | {field} | tau_mem | evaluated at | memorizer | Gaussian | patch | at the end: memorizer | "
             f"Gaussian | patch | nearest: before → end | closest to the Gaussian, the patch memorizer at |",
             "|" + "---|" * 12]
    for a in middle:
        lines.append(f"| {a['name']} | {a['value']:g} | {number(a['tau_mem'], '.0f')} | {a['before_step']:.0f} | "
                     + " | ".join(number(a[when].get(n), ".3f") for when in ("before", "end") for n in names) + " | "
                     f"{names[findings.nearest(a['before'])]} → {names[findings.nearest(a['end'])]} | "
                     f"{number(a['closest']['gaussian'], '.2f')}, {number(a['closest']['patch'], '.2f')} tau_mem |")
    by_band = findings.nearest_by_band(record)
    tally = lambda nearest: ", ".join(f"{name} {nearest.count(key)}" for key, name in names.items() if key in nearest)
    lines += ["", f"The nearest reference in each band, counted over the {len(middle)} runs: "
              + "; ".join(f"{band}: before {tally(before)}; at the end {tally(end)}"
                          for band, (before, end, _) in by_band.items()) + "."]
    for rule in findings.DISTANCE_RULES:
        lines += ["", f"**Nearest {rule}** (by the band's mean distance, at the last evaluation at or before tau_mem "
                      f"and at the end): " + "; ".join(f"{band} band {held[rule]} of {len(middle)} runs"
                                                       for band, (_, _, held) in by_band.items()) + "."]
    near = findings.closest_near_tau(middle)
    lines += ["", f"**Where the network comes closest to each reference** (middle band): within a factor "
                  f"{findings.NEAR_TAU:g} of tau_mem in " + ", ".join(f"{count} of {len(middle)} runs for the {names[name]}"
                                                                   for name, count in near.items()) + "."]
    shares = [r["distance_share"] for r in record["rows"] if r.get("distance_share") is not None]
    if shares:
        lines += ["", f"What the distances cost: {100 * min(shares):.1f}% to {100 * max(shares):.1f}% of a run's wall "
                      f"time (their references once, and their part of every evaluation; the budget is "
                      f"{findings.DISTANCE_BUDGET:.0%})."]
    return lines


def twin_lines(record, field):
    """Each twin pair's similarity before tau_mem and at the end, the rule's count, the trend
    with the axis value, and the twins' training time."""
    pairs = findings.twin_answers(record)
    if not pairs:
        return []
    agree = [findings.twins_agree_then_split(p) for p in pairs]
    lines = ["", "Twins on disjoint data, at the last sample step at or before the run's tau_mem and at the end "
                 "(chance: the pixel correlation of unpaired samples):", "",
             f"| run | {field} | tau_mem run, twin | sample step | similarity (chance) | at the end (chance) | "
             f"copies at the end, run, twin | agree, then split |", "|" + "---|" * 8]
    for p, ok in zip(pairs, agree):
        lines.append(f"| {p['name']} | {p['value']:g} | {number(p['tau_mem'], '.0f')}, {number(p['twin_tau_mem'], '.0f')} "
                     f"| {p['before_step']:.0f} | {number(p['before'], '.3f')} ({number(p['before_chance'], '.3f')}) | "
                     f"{number(p['end'], '.3f')} ({number(p['end_chance'], '.3f')}) | {number(p['mem'], '.2f')}, "
                     f"{number(p['mem_twin'], '.2f')} | {'yes' if ok else 'no'} |")
    rho = findings.spearman([p["value"] for p in pairs], [p["end"] for p in pairs])
    minutes = sum(p["seconds"] or 0 for p in pairs) / 60
    return lines + ["", f"**Disjoint twins agree before tau_mem and split after** (rule: a similarity at least halfway "
                        f"from chance to 1 there, and at least 0.1 lower at the end): {sum(agree)} of {len(pairs)} "
                        f"pairs. The similarity at the end against {field}: rank correlation {number(rho, '+.2f')}. "
                        f"The twins trained in {minutes:.1f} min (the budget is {findings.TWIN_BUDGET_MINUTES} min)."]


SCHEDULE_AXIS = "data"  # its first run (sweep.py --index 0) is evaluated on both schedules


def schedule_section(records):
    """The cpu preset's evaluation schedule against the dense one (the cpu-dense preset: as
    paper-dense is to paper) on one run: the data axis' first (the smallest N, where copies
    reach furthest)."""
    cheap_fields, dense_fields = study.PRESETS["cpu"], study.PRESETS["cpu-dense"]
    name = f"{SCHEDULE_AXIS}_{study.AXES['cpu'][SCHEDULE_AXIS][1][0]:g}"  # as sweep.run_configs names it
    lines = ["## The evaluation schedule: cheap against dense", "",
             f"The `cpu` preset samples {cheap_fields['num_samples']:,} images at {cheap_fields['num_sample_evals']} "
             f"of its {cheap_fields['num_evals']} evaluations, SW on {cheap_fields['swd_samples']:,} of them, as the "
             f"`paper` preset thins the paper's own evaluation; `cpu-dense` samples {dense_fields['num_samples']:,} at "
             f"{dense_fields['num_sample_evals']} of {dense_fields['num_evals']}, SW on {dense_fields['swd_samples']:,}, "
             f"as `paper-dense` does, and measures the losses on {dense_fields['eval_train_size']:,} training and "
             f"{dense_fields['num_test']:,} test images (the cheap: {cheap_fields['eval_train_size']:,} and "
             f"{cheap_fields['num_test']:,}). The training is the same, so one run on both schedules shows how far the "
             f"cheap numbers are from the dense ones.", ""]
    cheap, dense = records.get(f"cpu-{SCHEDULE_AXIS}"), records.get(f"cpu-dense-{SCHEDULE_AXIS}")
    found = findings.schedule_comparison(cheap, dense, name) if cheap and dense else None
    if not found:
        return lines + [f"No record yet: `python sweep.py --axis {SCHEDULE_AXIS} --preset cpu-dense --index 0`, "
                        f"then `python report.py publish sweeps/cpu-dense-{SCHEDULE_AXIS}` (and the cpu "
                        f"{SCHEDULE_AXIS} axis' record).", ""]
    lines += [f"| {name} | cheap ({found['sample_evals'][0]} sample evaluations) | dense "
              f"({found['sample_evals'][1]}) |", "|---|---|---|"]
    for key, (label, spec) in findings.SCHEDULE_METRICS.items():
        lines.append(f"| {label} | " + " | ".join(number(v, spec) for v in found["metrics"][key]) + " |")
    lines += ["", f"At the {len(found['shared_sample_steps'])} sample steps both schedules evaluate, SW differs by at "
                  f"most {100 * found['swd_difference']:.1f}% and the copy fraction by at most "
                  f"{found['mem_difference']:.3f}. The training is the same on both (evaluation never changes it: "
                  f"`tests/test_train.py` checks this), so these differences are the evaluation's alone."]
    if found["tau_mem_rules"]:
        lines += ["", "The rules for tau_mem considered ([METHODS.md](METHODS.md#tau_mem)), on the same run with the "
                      "loss sets of each schedule:", "", "| rule | cheap | dense | change |", "|---|---|---|---|"]
        for rule, (a, b) in found["tau_mem_rules"].items():
            change = f"{100 * (b / a - 1):+.0f}%" if a and b else "-"
            lines.append(f"| {rule} | {number(a, '.0f')} | {number(b, '.0f')} | {change} |")
    return lines + ["", ran_on(dense["ran_on"], dense.get("training_seconds")) + " (the dense run)", ""]


def ran_on(where, seconds=None):
    show = lambda v: ", ".join(map(str, v)) if isinstance(v, list) else "?" if v is None else str(v)
    dirty = where.get("uncommitted_changes")
    text = (f"Ran on {show(where.get('cpu', '?'))} ({show(where.get('cores', '?'))} cores, "
            f"{show(where.get('devices', '?'))}), {show(where.get('os', '?'))}; python {show(where.get('python', '?'))}, "
            f"jax {show(where.get('jax', '?'))}, numpy {show(where.get('numpy', '?'))}; commit "
            f"{show(where.get('commit', '?'))[:12]}" + (", with uncommitted changes" if dirty else ""))
    return text + (f"; training time {seconds / 60:.1f} min (the runs' logs)." if seconds else ".")


def bench_section(record):
    lines = ["## Speed on a CPU, against PyTorch", "", f"`{record['command']}`; how it is measured: "
             f"[METHODS.md](METHODS.md#how-speed-is-measured). Matmul rate {record['matmul_gflops']:.0f} GFLOP/s.", "",
             "| " + " | ".join(record["columns"]) + " |", "|" + "---|" * len(record["columns"])]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in record["rows"]]
    return lines + ["", ran_on(record["ran_on"]), ""]


def findings_table(found, link_prefix):
    lines = ["| paper finding | rule | on the cpu study | evidence |", "|---|---|---|---|"]
    for finding, rule, result, evidence, anchors in found:
        links = ", ".join(f"[{a}]({link_prefix}#{AXIS_TITLES[a].lower().replace(' ', '-')})" for a in anchors)
        lines.append(f"| {finding} | {rule} | **{result}** | {evidence} ({links}) |")
    return "\n".join(lines)


def document(records):
    found = findings.findings(records)
    lines = ["# Results", "", "<!-- written by `python report.py` from docs/results/*; edit report.py, not this "
             "file -->", "", "Each axis of the `cpu` preset, as its committed record in `docs/results/` holds it; "
             "what each number means is in [METHODS.md](METHODS.md). An axis without a record shows the command "
             "that makes one.", "", "## The paper's findings", "", findings_table(found, ""), ""]
    for axis in AXIS_TITLES:
        name = f"cpu-{axis}"
        if name in records:
            lines += axis_section(name, records[name])
        else:
            lines += [f"## {AXIS_TITLES[axis]}", "", f"No record yet: `python sweep.py --axis {axis} --preset cpu` "
                      f"then `python report.py publish sweeps/{name}`.", ""]
    lines += pre_memorization_section(records)
    lines += schedule_section(records)
    if "bench" in records:
        lines += bench_section(records["bench"])
    else:
        lines += ["## Speed on a CPU, against PyTorch", "", "No record yet: `python bench.py --suite --torch --publish`.", ""]
    return "\n".join(lines).rstrip() + "\n", found


def report(results_dir=RESULTS_DIR, document_path=DOCUMENT, readme=README):
    records = load_records(results_dir)
    text, found = document(records)
    with files.atomic_write(document_path, "w") as file:
        file.write(text)
    files.replace_block(readme, "findings", findings_table(found, "docs/RESULTS.md"))
    print(f"wrote {document_path} from {len(records)} records ({', '.join(records) or 'none'}) and the findings "
          f"table of {readme}")


def main(argv):
    try:
        if argv[:1] == ["publish"] and len(argv) == 2:
            publish(argv[1])
        elif argv:
            raise SystemExit(f"error: unknown arguments {' '.join(argv)}; usage:\n{__doc__.split(chr(10) * 2)[1]}")
        report()
    except (RecordError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
