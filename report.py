"""The study's results, written by the code: a small committed record per sweep, and
docs/RESULTS.md (with the README's findings table) generated from the records alone.

    python report.py publish sweeps/cpu-batch   # the sweep's record -> docs/results/cpu-batch/
    python report.py                            # docs/results/* -> docs/RESULTS.md, README.md's findings

sweeps/ is not in git and a fresh clone starts without it, so what a sweep found is kept as a
record: docs/results/<preset>-<axis>/record.json holds the summary table's rows and fits,
each run's curves (losses at every evaluation; copies and SW at every sample evaluation), and
where the sweep ran (CPU, cores, OS, python, jax and numpy versions, the commit and whether the
tree had uncommitted changes, from each run's provenance.json; the training time from the
logs); beside it the axis figures, as PNG. `python bench.py --suite --publish` writes
docs/results/bench/record.json. One axis can be re-run and re-published on its own; the
document is regenerated from whatever records there are, and each of the paper's findings gets
a verdict by the rule stated beside it. Every number in the document is written here.
"""
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

import files
import metrics
import sweep

RESULTS_DIR = Path(__file__).resolve().parent / "docs" / "results"
DOCUMENT = RESULTS_DIR.parent / "RESULTS.md"
README = RESULTS_DIR.parents[1] / "README.md"
AXIS_TITLES = {"batch": "Batch size", "data": "Dataset size", "model": "Model size", "lr": "Learning rate"}
AXIS_FIELDS = {"batch": "B", "data": "N", "model": "C", "lr": "lr"}


class RecordError(ValueError):
    """A record folder that cannot be read: the message names the folder and the fix."""


# --- records --------------------------------------------------------------------------------


def finite(x):
    """JSON has no NaN: None stands for a number that is undefined (no copies, no minimum)."""
    return float(x) if x is not None and np.isfinite(x) else None


def run_curves(log, mem_key, swd_key):
    """The curves a reader of the record may want to redraw or test a rule on."""
    curves = {"step": metrics.steps_of(log, "train_loss"), "train_loss": log["train_loss"],
              "test_loss": log["test_loss"], "sample_step": metrics.steps_of(log, mem_key), "mem": log[mem_key],
              "swd_test": log[swd_key], "swd_train": log.get(swd_key.replace("_test", "_train"), [])}
    if "elapsed_seconds" in log:
        curves["elapsed_seconds"] = log["elapsed_seconds"]
    return {key: [finite(v) for v in np.asarray(values, float)] for key, values in curves.items()}


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
    rows, curves, run_dirs = [], {}, []
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
    if not rows:
        raise RecordError(f"no run of {sweep_dir} has an evaluation yet; run the sweep first")
    record = {"kind": "sweep", "preset": meta["preset"], "axis": meta["axis"], "field": meta["field"],
              "normalization": meta["normalization"], "runs_planned": meta["runs"], "rows": rows, "curves": curves,
              "ran_on": where_it_ran(run_dirs),
              "training_seconds": sum(c["elapsed_seconds"][-1] or 0 for c in curves.values() if "elapsed_seconds" in c)}
    if meta["field"] == "num_train":
        n = [r["value"] for r in rows]
        record["fit"] = {k: finite(v) for k, v in metrics.scaling_fit(n, [r["tau_mem"] or np.nan for r in rows]).items()}
        record["fit_tau_gen"] = {k: finite(v) for k, v in
                                 metrics.scaling_fit(n, [r["tau_gen"] or np.nan for r in rows]).items()}
    return record


def write_record(record, figures, dest):
    """Write record.json and copy the figures into dest, all or nothing: the folder is built
    beside dest under a temporary name, then swapped in."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        record = dict(record, figures=[Path(figure).name for figure in figures])
        for figure in figures:
            shutil.copyfile(figure, building / Path(figure).name)
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
    figures = sorted((Path(sweep_dir) / "figures").glob("*.png"))
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


# --- the paper's findings, each by a rule ---------------------------------------------------


def verdict(passed, total):
    if total == 0:
        return "no record"
    return "reproduced" if passed == total else "partly" if passed > 0 else "not reproduced"


def spread(values):
    """(min, max) of values relative to their mean, as fractions: (-0.13, 0.11) is -13%..+11%."""
    values = np.asarray([v for v in values if v is not None], float)
    return (float(values.min() / values.mean() - 1), float(values.max() / values.mean() - 1)) if len(values) else (0, 0)


def double_descent(swd, tolerance=0.02):
    """Whether a SW curve falls, rises by more than `tolerance` and falls again by as much."""
    s = [v for v in swd if v is not None]
    for j in range(1, len(s) - 1):
        if min(s[:j]) * (1 + tolerance) < s[j] and min(s[j + 1:], default=np.inf) * (1 + tolerance) < s[j]:
            return True
    return False


def spearman(x, y):
    rank = lambda v: np.argsort(np.argsort(v))
    ok = [i for i in range(len(x)) if x[i] is not None and y[i] is not None]
    return float(np.corrcoef(rank([x[i] for i in ok]), rank([y[i] for i in ok]))[0, 1]) if len(ok) > 2 else np.nan


def findings(records, preset="cpu"):
    """[(finding, rule, verdict, evidence, anchors)] of the paper's findings on the preset's records."""
    axes = {r["axis"]: r for r in records.values() if r.get("kind") == "sweep" and r["preset"] == preset}
    rows = [(axis, row) for axis, r in axes.items() for row in r["rows"]]
    out = []

    novel = [row for _, row in rows if row["mem_at_best_swd"] is not None and row["mem_at_best_swd"] <= 0.05]
    ordered = [row for _, row in rows if row["copy_onset"] is None or row["tau_mem"] is None
               or row["copy_onset"] >= row["tau_mem"]]
    out.append(("1. a memorization transition: novel samples first, then copies",
                "in every run, at most 5% copies at the best fidelity before tau_mem, and the copy onset after tau_mem",
                verdict(len(novel) + len(ordered), 2 * len(rows)),
                f"novel at the best fidelity in {len(novel)} of {len(rows)} runs; copy onset after tau_mem in "
                f"{len(ordered)} of {len(rows)}", list(axes)))

    data = axes.get("data")
    slope = data["fit"]["loglog_slope"] if data else None
    out.append(("2. tau_mem grows linearly with N", "log-log slope of tau_mem against N within 1 ± 0.2 (partly: ± 0.5)",
                "no record" if slope is None else "reproduced" if abs(slope - 1) <= 0.2
                else "partly" if abs(slope - 1) <= 0.5 else "not reproduced",
                "no data-axis record" if slope is None else
                f"slope {slope:.2f}, tau_mem = {data['fit']['origin_slope']:.3g} N (R² {data['fit']['origin_r2']:.2f})",
                ["data"]))

    checks, evidence = [], []
    if data:
        mem = [row["final_mem"] for row in data["rows"]]
        checks.append(all(a >= b for a, b in zip(mem, mem[1:])))
        evidence.append("final copies by N: " + ", ".join(f"{m:.2f}" for m in mem))
    if model := axes.get("model"):
        tau = [row["tau_mem"] for row in model["rows"]]
        checks.append(None not in tau and all(a >= b for a, b in zip(tau, tau[1:])))
        evidence.append("tau_mem by C: " + ", ".join(f"{t:.0f}" if t else "-" for t in tau))
    out.append(("3. larger N delays memorization, larger models memorize sooner",
                "final copy fraction falls with N, and tau_mem falls with model size", verdict(sum(checks), len(checks)),
                "; ".join(evidence) or "no record", ["data", "model"]))

    checks, evidence = [], []
    for axis, sign in (("batch", 1), ("lr", -1)):
        if axis in axes:
            r = axes[axis]["rows"]
            rho = sign * spearman([row["value"] for row in r], [row["best_swd"] for row in r])
            checks.append(rho)
            evidence.append(f"{AXIS_FIELDS[axis]}: rank correlation {rho:+.2f}")
    out.append(("4. smaller batches and larger learning rates give better fidelity before tau_mem",
                "best SW before tau_mem in the paper's order along each axis (rank correlation 1; partly: > 0)",
                "no record" if not checks else "reproduced" if all(c >= 0.99 for c in checks)
                else "partly" if any(c > 0 for c in checks) else "not reproduced", "; ".join(evidence) or "no record",
                ["batch", "lr"]))

    checks, evidence = [], []
    for axis, collapses in (("batch", True), ("data", True), ("lr", False)):
        if axis in axes:
            low, high = spread([row["tau_mem_T"] for row in axes[axis]["rows"]])
            checks.append((max(-low, high) <= 0.25) == collapses)
            evidence.append(f"{AXIS_FIELDS[axis]}: tau_mem in T {100 * low:+.0f}%..{100 * high:+.0f}% of its mean")
    out.append(("5. curves of different N and B collapse in the normalized step T, not those of lr",
                "tau_mem in T within ±25% of its mean across B and across N, and not across lr",
                verdict(sum(checks), len(checks)), "; ".join(evidence) or "no record", ["batch", "data", "lr"]))

    both = [(name, c) for r in axes.values() for name, c in r["curves"].items()]
    descents = [name for name, c in both if double_descent(c["swd_test"])]
    together = [name for name, c in both if c["swd_train"] and np.nanmedian(
        [abs(a - b) / b for a, b in zip(c["swd_train"], c["swd_test"]) if a is not None and b]) <= 0.15]
    out.append(("6. SW to the train and the test images stay together and descend twice",
                "the test-split SW of a run falls, rises by more than 2% and falls again; train and test SW within "
                "15% of each other (median over sample evaluations)",
                verdict(len(descents) + len(together), 2 * len(both)),
                f"a double descent in {len(descents)} of {len(both)} runs; the splits together in {len(together)} "
                f"of {len(both)}", list(axes)))
    missing = lambda anchors: [a for a in anchors if a not in axes]
    return [(finding, rule, result + (" so far" if missing(anchors) and result != "no record" else ""),
             evidence + (f"; no record of {', '.join(missing(anchors))} yet" if missing(anchors)
                         and result != "no record" else ""), anchors)
            for finding, rule, result, evidence, anchors in out]


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
    lines += [""] + [f"![{figure}](results/{name}/{figure})" for figure in record["figures"]]
    lines += ["", ran_on(record["ran_on"], record.get("training_seconds")), ""]
    return lines


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
    found = findings(records)
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
