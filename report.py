"""The study's results document, written by the code from the committed records alone
(records.py): docs/RESULTS.md, the README's findings table, pre-memorization summary and speed
summary, and METHODS.md's cost plan.

    python report.py publish sweeps/cpu-batch   # the sweep's record -> docs/results/cpu-batch/
    python report.py                            # docs/results/* -> docs/RESULTS.md, README.md's blocks
    python report.py plan                       # the paper preset's cost plan -> docs/results/plan-paper/

One axis can be re-run and re-published on its own; the document is regenerated from whatever
records there are, and an axis without one shows the command that makes it. The paper's
findings get a verdict, and the pre-memorization questions an answer, each by the rule stated
beside it (findings.py). Every number in the document is written here.
"""
import sys

import numpy as np

import files
import findings
import metrics
import profiling
import records
import study
import sweep

DOCUMENT = records.RESULTS_DIR.parent / "RESULTS.md"
README = records.RESULTS_DIR.parents[1] / "README.md"
METHODS = records.RESULTS_DIR.parent / "METHODS.md"
AXIS_TITLES = {"batch": "Batch size", "data": "Dataset size", "model": "Model size", "lr": "Learning rate"}
PRE_MEMORIZATION_FIGURES = ("distances_", "twins")  # shown in their own section, not the axis'


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

def pre_memorization_section(results):
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
    shown = axes_with_distances(results)
    for axis in shown:
        record = results[f"cpu-{axis}"]
        lines += [f"### {AXIS_TITLES[axis]}", ""] + distance_lines(record, findings.AXIS_FIELDS[axis])
        lines += twin_lines(record, findings.AXIS_FIELDS[axis])
        lines += [""] + [f"![{figure}](results/cpu-{axis}/{figure})" for figure in record["figures"]
                         if figure.startswith(PRE_MEMORIZATION_FIGURES)] + [""]
    if not shown:
        lines += [NO_DISTANCES, ""]
    return lines


NO_DISTANCES = ("No record holds the distances yet: `python sweep.py --axis data --twin --preset cpu`, then "
                "`python report.py publish sweeps/cpu-data`.")


def axes_with_distances(results):
    """The cpu axes, in the document's order, whose record logged the distances."""
    return [axis for axis in AXIS_TITLES if f"cpu-{axis}" in results
            and findings.distance_answers(results[f"cpu-{axis}"], "middle")]


def pre_memorization_summary(results):
    """A few sentences for the README: over every cpu axis whose record holds the distances,
    the nearest reference before tau_mem and at the end (middle band), where the network comes
    closest to the patch memorizer, and the twins' verdicts."""
    axes = axes_with_distances(results)
    if not axes:
        return NO_DISTANCES
    middle = [a for axis in axes for a in findings.distance_answers(results[f"cpu-{axis}"], "middle")]
    pairs = [p for axis in axes for p in findings.twin_answers(results[f"cpu-{axis}"])]
    tally = lambda when: ", ".join(f"the {name} in {count}" for key, name in metrics.REFERENCES.items()
                                   if (count := sum(findings.nearest(a[when]) == key for a in middle)))
    near = findings.closest_near_tau(middle)
    names = ", ".join(axes[:-1]) + " and " + axes[-1] if len(axes) > 1 else axes[0]
    text = (f"On the {names} {'axes' if len(axes) > 1 else 'axis'} ({len(middle)} runs), at middle noise "
            f"levels: at the last evaluation before tau_mem the network is nearest {tally('before')} runs; at the "
            f"end, nearest {tally('end')}. It comes closest to the patch memorizer within a factor "
            f"{findings.NEAR_TAU:g} of tau_mem in {near['patch']} of {len(middle)} runs.")
    if pairs:
        text += (f" Twins trained on disjoint data agree before tau_mem and split after in "
                 f"{sum(map(findings.twins_agree_then_split, pairs))} of {len(pairs)} pairs.")
    return text + " [Details](docs/RESULTS.md#what-the-network-learns-before-tau_mem)."


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
    rho = findings.spearman([a["value"] for a in middle], [a["closest_distance"]["gaussian"] for a in middle])
    lines += ["", "The closest the network comes to the Gaussian fit (middle band): "
              + ", ".join(f"{a['closest_distance']['gaussian']:.3f} at {field} = {a['value']:g}" for a in middle)
              + (f" (rank correlation with {field} {rho:+.2f})." if np.isfinite(rho) else ".")]
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
                        f"from chance to 1 there, and at least {findings.TWIN_SPLIT:g} lower at the end): {sum(agree)} "
                        f"of {len(pairs)} "
                        f"pairs. The similarity at the end against {field}: rank correlation {number(rho, '+.2f')}. "
                        f"The twins trained in {minutes:.1f} min (the budget is {findings.TWIN_BUDGET_MINUTES} min)."]


SCHEDULE_AXIS = "data"  # its first run (sweep.py --index 0) is evaluated on both schedules


def schedule_section(results):
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
    cheap, dense = results.get(f"cpu-{SCHEDULE_AXIS}"), results.get(f"cpu-dense-{SCHEDULE_AXIS}")
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
    return lines + ["", ran_on(dense["ran_on"], dense.get("training_seconds"), subject="The dense run ran"), ""]


def ran_on(where, seconds=None, subject="Ran"):
    """Where a record was made, from its 'ran_on': "Ran on <CPU> (...); commit ...; training time"."""
    show = lambda v: ", ".join(map(str, v)) if isinstance(v, list) else "?" if v is None else str(v)
    dirty = where.get("uncommitted_changes")
    text = (f"{subject} on {show(where.get('cpu', '?'))} ({show(where.get('cores', '?'))} cores, "
            f"{show(where.get('devices', '?'))}), {show(where.get('os', '?'))}; python {show(where.get('python', '?'))}, "
            f"jax {show(where.get('jax', '?'))}, numpy {show(where.get('numpy', '?'))}; commit "
            f"{show(where.get('commit', '?'))[:12]}" + (", with uncommitted changes" if dirty else ""))
    return text + (f"; training time {seconds / 60:.1f} min (the runs' logs)." if seconds else ".")


# the two steps bench.py times and profiles: (name in a profile, what it is, JAX / torch time
# ratio from a row of the record's table)
STEPS = {"train": ("train step", lambda row: float(row["JAX/eager"])),
         "sample": ("sampler's Euler step", lambda row: float(row["torch sample img/s"]) / float(row["sample img/s"]))}


def speed_answers(record, step="train"):
    """[(config, JAX / torch eager time of the step or None, [(kind, JAX - torch ms per step)]
    largest first, the kind of operation with the widest gap or None)] for each config of a
    bench record; the excess by kind only where the config was profiled with torch beside it."""
    answers = []
    for values in record["rows"]:
        row = dict(zip(record["columns"], values))
        try:
            ratio = round(STEPS[step][1](row), 2)  # as shown
        except (KeyError, ValueError):  # run without --torch
            ratio = None
        profile = record.get("profiles", {}).get(values[0], {}).get(step, {})
        excess = sorted(((kind, profile["jax"][kind] - profile["torch"][kind]) for kind in profile["jax"]),
                        key=lambda pair: -pair[1]) if "torch" in profile else []
        widest = next((kind for kind, ms in excess if kind in profiling.KINDS and ms > 0), None)
        answers.append((values[0], ratio, excess, widest))
    return answers


def excess_text(excess):
    return ", ".join(f"{kind} {ms:+.1f} ms" for kind, ms in excess)


def lines_text(profile, kind):
    """The JAX lines of code with the most time in operations of this kind, with that time."""
    return ", ".join(f"`{source}` {ms:.1f} ms" for ms, k, source in profile.get("jax_lines", []) if k == kind)


def speed_summary(record):
    """The README's lines on speed: for each step and config, the JAX / torch eager time, and
    where it is above 1.0, the kinds of work JAX spends more on than torch, largest first, and
    the lines of code whose operations make the widest gap."""
    if record is None:
        return "No benchmark record yet: `python bench.py --suite --torch --profile /tmp/trace --publish`."
    lines = []
    for step, (what, _) in STEPS.items():
        for config, ratio, excess, widest in speed_answers(record, step):
            profile = record.get("profiles", {}).get(config, {}).get(step, {})
            head = f"- {what}, {config}: JAX / torch eager time {ratio:.2f}" if ratio is not None else ""
            if ratio is None:
                lines.append(f"- {what}, {config}: not compared with torch (`--torch`).")
            elif ratio <= 1.0:
                lines.append(f"{head}, at or below torch.")
            elif excess:
                where = lines_text(profile, widest) if widest else ""
                lines.append(f"{head}. JAX's time beyond torch's, by kind of work: {excess_text(excess)}."
                             + (f" The widest gap is in {widest} work; JAX's time there is mostly in {where}."
                                if where else ""))
            else:
                lines.append(f"{head}; not profiled (`--profile DIR`).")
    return "\n".join(lines + ["", "Measured by `" + record["command"] + "`: [the table, the profiles and where it ran]"
                              "(docs/RESULTS.md#speed-on-a-cpu-against-pytorch)."])


def profile_section(config, what, ratio, excess, widest, profile):
    """RESULTS' lines on where one step's time goes on one config (bench.py --profile)."""
    lines = ["", f"### Where the time goes: {what}, {config}", "", f"ms per {what} by kind of work, from 5 profiled "
             "steps (`--profile`; profiling slows a step a little)" + (f"; JAX / torch eager time {ratio:.2f}."
                                                                       if ratio is not None else "."),
             "", *profiling.profile_table(profile["jax"], profile.get("torch"))]
    if excess:
        lines += ["", f"JAX's time beyond torch's, largest first: {excess_text(excess)}."]
    if widest:
        lines += ["", f"The kind of work with the widest gap, {widest}, ms per step:", ""]
        if where := lines_text(profile, widest):
            lines += [f"- the JAX lines of code whose operations take the most: {where}"]
        for side in ("jax", "torch"):
            heaviest = [f"{name} `{shape}` {ms:.2f}" if shape else f"`{name}` {ms:.2f}"
                        for ms, kind, name, shape, *_ in profile.get(f"{side}_top", []) if kind == widest]
            if heaviest:
                lines += [f"- the heaviest {'JAX' if side == 'jax' else 'torch'} operations: {', '.join(heaviest)}"]
    return lines


def bench_section(record):
    lines = ["## Speed on a CPU, against PyTorch", "", f"`{record['command']}`; how it is measured: "
             f"[METHODS.md](METHODS.md#how-speed-is-measured). Matmul rate {record['matmul_gflops']:.0f} GFLOP/s.", "",
             "| " + " | ".join(record["columns"]) + " |", "|" + "---|" * len(record["columns"])]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in record["rows"]]
    for step, (what, _) in STEPS.items():
        for config, ratio, excess, widest in speed_answers(record, step):
            if profile := record.get("profiles", {}).get(config, {}).get(step):
                lines += profile_section(config, what, ratio, excess, widest, profile)
    return lines + ["", ran_on(record["ran_on"]), ""]


def first_line_summary(record):
    """What the README's first line prints at the end, from the batch axis' record (its runs are
    the first line's), and how long they trained."""
    if record is None:
        return ("No record of the batch axis yet: `python sweep.py --axis batch`, then `python report.py publish "
                "sweeps/cpu-batch`.")
    where = record["ran_on"]
    trained = (f"Its {len(record['rows'])} runs trained in {record['training_seconds'] / 60:.1f} min"
               if record.get("training_seconds") else "It ran")
    rows = [{key: float("nan") if value is None else value for key, value in row.items()}  # NaN is null in JSON
            for row in record["rows"]]
    return "\n".join(["```", *sweep.summary_lines(rows, record["field"]), "```", "",
                      f"{trained} on a {where.get('cores', '?')}-core {where.get('cpu', '?')} "
                      f"({where.get('devices', '?')}); the install and the compilations add a few minutes. The "
                      f"table is the committed record's ([docs/results/cpu-batch](docs/results/cpu-batch/record.json))."])


def plan_text(record):
    """METHODS.md's cost plan of the paper preset, from its record (records.publish_plan)."""
    if record is None:
        return "No cost plan recorded yet: `python report.py plan`."
    percent = lambda share: f"{100 * share:.1f}%"
    lines = []
    for table in record["tables"]:
        where = f"--hardware {table['hardware']} --devices {table['devices']}"
        command = (f"python plan.py --preset {record['preset']} {where}" if table["axis"] is None else
                   f"python sweep.py --axis {table['axis']} --preset {record['preset']} --plan {where}")
        lines += [f"`{command} --utilization {record['utilization']}`:", "", "```", *table["lines"], "```", ""]
    axes = record["shares"]["axes"]
    others = []
    for axis, shares in axes.items():
        runs = {name: share for name, share in shares.items() if name != "total"}
        top = max(runs, key=runs.get)
        others.append(f"{percent(shares['total'])} of the {axis} axis (its {top} run spends the largest share on "
                      f"it, {percent(runs[top])})")
    lines.append("Evaluation is " + "; ".join(others) + ".")
    if "dense run" in record["shares"]:
        dense = record["shares"]["dense run"]
        lines.append(f"With the paper's own evaluation (`--preset {record['preset']}-dense`) the default run's "
                     f"evaluation share is {percent(dense)} (its evaluation costs {dense / (1 - dense):.1f} times "
                     f"its training), against {percent(record['shares']['run'])} for `--preset {record['preset']}`.")
    return "\n".join(lines + ["", f"Written by `{record['command']}` ([its record](results/plan-{record['preset']}/"
                              f"record.json))."])


def findings_table(found, link_prefix):
    lines = ["| paper finding | rule | on the cpu study | evidence |", "|---|---|---|---|"]
    for finding, rule, result, evidence, anchors in found:
        links = ", ".join(f"[{a}]({link_prefix}#{AXIS_TITLES[a].lower().replace(' ', '-')})" for a in anchors)
        lines.append(f"| {finding} | {rule} | **{result}** | {evidence} ({links}) |")
    return "\n".join(lines)


def document(results):
    """(the text of RESULTS.md, the findings) from results: {folder name: record}, as
    records.load_records gives them."""
    found = findings.findings(results)
    lines = ["# Results", "", "<!-- written by `python report.py` from docs/results/*; edit report.py, not this "
             "file -->", "", "Each axis of the `cpu` preset, as its committed record in `docs/results/` holds it; "
             "what each number means is in [METHODS.md](METHODS.md). An axis without a record shows the command "
             "that makes one.", "", "## The paper's findings", "", findings_table(found, ""), ""]
    for axis in AXIS_TITLES:
        name = f"cpu-{axis}"
        if name in results:
            lines += axis_section(name, results[name])
        else:
            lines += [f"## {AXIS_TITLES[axis]}", "", f"No record yet: `python sweep.py --axis {axis} --preset cpu` "
                      f"then `python report.py publish sweeps/{name}`.", ""]
    lines += pre_memorization_section(results)
    lines += schedule_section(results)
    if "bench" in results:
        lines += bench_section(results["bench"])
    else:
        lines += ["## Speed on a CPU, against PyTorch", "", "No record yet: `python bench.py --suite --torch --publish`.", ""]
    return "\n".join(lines).rstrip() + "\n", found


def report(results_dir=records.RESULTS_DIR, document_path=DOCUMENT, readme=README, methods=METHODS):
    results = records.load_records(results_dir)
    text, found = document(results)
    with files.atomic_write(document_path, "w") as file:
        file.write(text)
    files.replace_block(readme, "findings", findings_table(found, "docs/RESULTS.md"))
    files.replace_block(readme, "pre-memorization", pre_memorization_summary(results))
    files.replace_block(readme, "first-line", first_line_summary(results.get("cpu-batch")))
    files.replace_block(readme, "speed", speed_summary(results.get("bench")))
    files.replace_block(methods, "cost-plan", plan_text(results.get("plan-paper")))
    print(f"wrote {document_path} from {len(results)} records ({', '.join(results) or 'none'}), and the findings "
          f"table, the pre-memorization summary and the speed summary of {readme}, and the cost plan of {methods}")


def main(argv):
    try:
        if argv[:1] == ["publish"] and len(argv) == 2:
            records.publish(argv[1])
        elif argv[:1] == ["plan"] and len(argv) <= 2:
            records.publish_plan(*argv[1:])
        elif argv:
            raise SystemExit(f"error: unknown arguments {' '.join(argv)}; usage:\n{__doc__.split(chr(10) * 2)[1]}")
        report()
    except (records.RecordError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main(sys.argv[1:])
