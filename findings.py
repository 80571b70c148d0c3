"""The study's questions, each answered by a rule stated beside it and computed from the
records alone (records.py writes them; report.py renders the answers into docs/RESULTS.md):

- the paper's six findings on the cpu study: a verdict (reproduced, partly, not reproduced)
  with the evidence;
- what the network learns before tau_mem: per run, the nearest exact reference (memorizer,
  Gaussian fit, patch memorizer) by noise band before tau_mem and at the end, and whether
  twins trained on disjoint data agree before tau_mem and part after.

A record is records.py's dict (record.json): 'rows' of the sweep table, 'curves' per run,
'twins' per run with a twin.
"""
import numpy as np

import metrics

AXIS_FIELDS = {"batch": "B", "data": "N", "model": "C", "lr": "lr"}


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


# --- what the network learns before tau_mem -------------------------------------------------

def last_at_or_before(steps, step):
    """The index of the last of `steps` at or before `step` (the last of all if step is None)."""
    if step is None:
        return len(steps) - 1
    return max(int(np.searchsorted(np.asarray(steps, float), step, side="right")) - 1, 0)


def nearest(distances):
    """The reference of {reference: distance} the network is nearest to."""
    return min(distances, key=distances.get)


def distance_answers(record, band):
    """Per run of the record that logged distances: its distances to each reference, averaged
    over the band's bins, at its last evaluation at or before tau_mem ('before') and at its end,
    and its closest approach to each reference: the step, as a multiple of tau_mem ('closest'),
    and the distance there ('closest_distance')."""
    out = []
    for row in record["rows"]:
        curves = record["curves"][row["name"]]
        if "distance_gaussian_bins" not in curves:
            continue
        in_band = metrics.distances_in_band(curves, band)  # {reference: (E,)}
        before = last_at_or_before(curves["step"], row["tau_mem"])
        closest = {name: curves["step"][int(np.nanargmin(d))] / row["tau_mem"] if row["tau_mem"] else None
                   for name, d in in_band.items()}
        out.append({"name": row["name"], "value": row["value"], "tau_mem": row["tau_mem"],
                    "before_step": curves["step"][before],
                    "before": {name: float(d[before]) for name, d in in_band.items()},
                    "end": {name: float(d[-1]) for name, d in in_band.items()}, "closest": closest,
                    "closest_distance": {name: float(np.nanmin(d)) for name, d in in_band.items()}})
    return out


# The rules: which references the network must be nearest to before tau_mem and at the end.
# The first is the question as Li, Dai & Qu pose it; the second allows either reference that
# generalizes (the Gaussian fit knows second moments, the patch memorizer local patches).
DISTANCE_RULES = {"the Gaussian fit before tau_mem, the memorizer after": ({"gaussian"}, {"memorizer"}),
                  "a generalizing reference (Gaussian fit or patch memorizer) before, the memorizer after":
                      ({"gaussian", "patch"}, {"memorizer"})}


def nearest_by_band(record):
    """{band: (nearest reference before tau_mem, nearest at the end: one of each per run,
    {rule: how many runs follow it})}."""
    out = {}
    for band in metrics.NOISE_BANDS:
        answers = distance_answers(record, band)
        before, end = [nearest(a["before"]) for a in answers], [nearest(a["end"]) for a in answers]
        out[band] = (before, end, {rule: sum(b in first and e in then for b, e in zip(before, end))
                                   for rule, (first, then) in DISTANCE_RULES.items()})
    return out


NEAR_TAU = 1.5  # "near tau_mem": within this factor of it
DISTANCE_BUDGET, TWIN_BUDGET_MINUTES = 0.25, 30  # what the instruments may cost: of a run's time; the twin axis


def closest_near_tau(answers):
    """{reference: in how many runs (distance_answers) the closest approach to it falls within
    a factor NEAR_TAU of tau_mem}."""
    return {name: sum(a["closest"].get(name) is not None and 1 / NEAR_TAU <= a["closest"][name] <= NEAR_TAU
                      for a in answers) for name in metrics.REFERENCES}


def twin_answers(record):
    """Per twin pair: the paired similarity (and its chance level) at the last sample step at
    or before the run's tau_mem and at the end, and the copies of both at the end."""
    out = []
    for row in record["rows"]:
        pair = record.get("twins", {}).get(row["name"])
        if not pair or not pair["step"]:
            continue
        before = last_at_or_before(pair["step"], row["tau_mem"])
        out.append({"name": row["name"], "value": row["value"], "tau_mem": row["tau_mem"],
                    "twin_tau_mem": pair["twin_tau_mem"], "before_step": pair["step"][before],
                    "before": pair["similarity"][before], "before_chance": pair["similarity_chance"][before],
                    "end": pair["similarity"][-1], "end_chance": pair["similarity_chance"][-1],
                    "mem": pair["mem"][-1], "mem_twin": pair["mem_twin"][-1], "seconds": pair["twin_seconds"]})
    return out


TWIN_SPLIT = 0.1  # how much lower a pair's similarity must end than before tau_mem to count as split


def twins_agree_then_split(pair):
    """The rule: the pair agrees before tau_mem (similarity at least halfway from chance to 1)
    and splits after (its similarity at the end at least TWIN_SPLIT lower)."""
    return (pair["before"] >= (1 + pair["before_chance"]) / 2) and (pair["end"] <= pair["before"] - TWIN_SPLIT)


# --- the cheap evaluation schedule against the dense one ------------------------------------

SCHEDULE_METRICS = {"tau_mem": ("tau_mem (test-loss minimum)", ".0f"), "tau_gen": ("tau_gen", ".0f"),
                    "copy_onset": ("copy onset", ".0f"), "best_swd": ("best SW before tau_mem", ".4g"),
                    "best_swd_step": ("its step", ".0f"), "mem_at_best_swd": ("copies there", ".2f"),
                    "memorization_rate": ("memorization rate / decade", ".3f"), "final_mem": ("final copies", ".2f")}


def crossing(steps, values, threshold):
    """The first step at which values reach threshold, interpolated in log(step) between the
    two evaluations around it; None if they never do."""
    above = np.flatnonzero(np.asarray(values, float) >= threshold)
    if not len(above):
        return None
    i = int(above[0])
    if i == 0:
        return float(steps[0])
    (s0, s1), (v0, v1) = np.log(steps[i - 1:i + 1]), values[i - 1:i + 1]
    return float(np.exp(s0 + (threshold - v0) / (v1 - v0) * (s1 - s0)))


def tau_mem_rules(row, curves):
    """The step each candidate rule for tau_mem gives on one run: ours (the smoothed test-loss
    minimum, metrics.memorization_time) and three that fire on the train-test gap."""
    gap = np.subtract(curves["test_loss"], curves["train_loss"])
    error = np.hypot(curves["train_loss_sem"], curves["test_loss_sem"])  # the two sets are independent
    return {"gap > 3 standard errors": crossing(curves["step"], gap / error, 3.0),
            "normalized gap crosses 0.1": crossing(curves["step"], curves["gap_normalized"], 0.1),
            "normalized gap crosses 0.05": crossing(curves["step"], curves["gap_normalized"], 0.05),
            "smoothed test-loss minimum (ours)": row["tau_mem"]}


def schedule_comparison(cheap, dense, name):
    """One run evaluated on two schedules (the records of one axis under the cpu and cpu-dense
    presets): each summary metric and each rule for tau_mem on both, and at the sample steps
    they share, the largest relative difference of SW and the largest difference of the copy
    fraction. None unless both records hold the run."""
    rows = [next((r for r in record["rows"] if r["name"] == name), None) for record in (cheap, dense)]
    if None in rows:
        return None
    curves = [record["curves"][name] for record in (cheap, dense)]
    shared = sorted(set(curves[0]["sample_step"]) & set(curves[1]["sample_step"]))
    at = lambda c, key: np.array([c[key][c["sample_step"].index(s)] for s in shared], float)
    rules = ([tau_mem_rules(row, c) for row, c in zip(rows, curves)] if all("gap_normalized" in c for c in curves)
             else [{}, {}])
    return {"metrics": {key: (rows[0].get(key), rows[1].get(key)) for key in SCHEDULE_METRICS},
            "tau_mem_rules": {rule: (rules[0][rule], rules[1][rule]) for rule in rules[0]},
            "sample_evals": (len(curves[0]["sample_step"]), len(curves[1]["sample_step"])),
            "shared_sample_steps": shared,
            "swd_difference": float(np.max(np.abs(at(curves[1], "swd_test") / at(curves[0], "swd_test") - 1)))
            if shared else None,
            "mem_difference": float(np.max(np.abs(at(curves[1], "mem") - at(curves[0], "mem")))) if shared else None}
