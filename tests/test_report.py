"""records.py, findings.py and report.py: a tiny sweep made here is published as a record and
reported; the document's numbers are the summary's; the rules hold on closed cases; reporting
is repeatable; bad record folders are one-line errors."""
import json
import shutil

import numpy as np
import pytest

import findings
import metrics
import profiling
import records
import report
import rundir
import study
import sweep
from conftest import TINY


def tiny_flags():
    flags = []
    for key, value in TINY.items():
        flags += [f"--{key}", ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
    return flags


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Two runs of the cpu data axis at tiny sizes and their twins (runs 4 and 5: the next N
    images), made on a tree said to have uncommitted changes, summarized and compared by
    sweep.py and published into a results folder of their own."""
    root = tmp_path_factory.mktemp("report")
    out = root / "sweeps" / "cpu-data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rundir, "git_commit", lambda: ("0123abc", True))
        for index in ("0", "1", "4", "5"):
            sweep.main(["--axis", "data", "--preset", "cpu", "--out", str(out), "--index", index, "--twin", *tiny_flags(),
                        "--data_dir", str(root / "data")])
    sweep.main(["--axis", "data", "--preset", "cpu", "--out", str(out), "--summary", "--twin", *tiny_flags()])
    results = root / "results"
    records.publish(out, results)
    readme = root / "README.md"
    readme.write_text("# x\n<!-- findings: begin -->\n<!-- findings: end -->\n"
                      "<!-- pre-memorization: begin -->\n<!-- pre-memorization: end -->\n"
                      "<!-- speed: begin -->\n<!-- speed: end -->\n<!-- first-line: begin -->\n<!-- first-line: end -->\n")
    (root / "METHODS.md").write_text("# m\n<!-- cost-plan: begin -->\n<!-- cost-plan: end -->\n")
    report.report(results, root / "RESULTS.md", readme, root / "METHODS.md")
    return root, out, results


def test_the_record_and_the_document_hold_the_summary_numbers(published):
    root, out, results = published
    record = json.loads((results / "cpu-data" / "record.json").read_text())
    with np.load(out / "summary.npz") as summary:
        assert [row["name"] for row in record["rows"]] == summary["name"].tolist() == ["data_40", "data_80"]
        for key in ("final_mem", "best_swd", "memorizer_swd", "gaussian_swd", "steps_done"):
            np.testing.assert_array_equal([row[key] for row in record["rows"]], summary[key], err_msg=key)
    paired = [f"twins_samples_{name}.png" for name in ("data_40", "data_80")]  # from each run's own figures
    assert sorted(record["figures"]) == sorted([p.name for p in (out / "figures").glob("*.png")] + paired)
    assert {"distances_data.png", "twins_axis.png"} <= set(record["figures"])
    assert all((results / "cpu-data" / figure).exists() for figure in record["figures"])
    document = (root / "RESULTS.md").read_text()
    for row in record["rows"]:
        line = next(line for line in document.splitlines() if line.startswith(f"| {row['name']} |"))
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        assert cells[1] == f"{row['value']:g}" and cells[2] == str(row["steps_done"])
        assert cells[8] == format(row["best_swd"], ".4g") and cells[13] == f"{row['final_mem']:.2f}"
    assert "## Batch size" in document and "No record yet: `python sweep.py --axis batch --preset cpu`" in document
    readme = (root / "README.md").read_text()
    assert "| paper finding |" in readme and "Twins trained on disjoint data agree" in readme  # its blocks, filled in


def test_the_record_holds_the_distances_and_the_twins_and_the_document_their_answers(published):
    root, out, results = published
    record = json.loads((results / "cpu-data" / "record.json").read_text())
    log = metrics.load_log(out / "data_40")
    np.testing.assert_array_equal(np.asarray(record["curves"]["data_40"]["distance_patch_bins"], float),
                                  log["distance_patch_bins"])  # None in JSON: a bin without inputs
    np.testing.assert_array_equal(np.asarray(record["curves"]["data_40"]["gaussian_distance_memorizer_bins"], float),
                                  log["gaussian_distance_memorizer_bins"][0])
    assert 0 < record["rows"][0]["distance_share"] < 1
    with np.load(out / "data_80" / "twins.npz") as twins:
        pair = record["twins"]["data_80"]
        assert pair["twin"] == "data_80_twin" and pair["similarity"] == twins["similarity"].tolist()
        assert pair["twin_seconds"] > 0
        end = twins["similarity"][-1]
    document = (root / "RESULTS.md").read_text()
    section = document[document.index("## What the network learns before tau_mem"):]
    twin_table = section[section.index("Twins on disjoint data"):]
    twin_row = next(line for line in twin_table.splitlines() if line.startswith("| data_80 |"))
    assert f"| {end:.3f} (" in twin_row
    assert "**Disjoint twins agree before tau_mem and split after**" in section
    assert "![distances_data.png](results/cpu-data/distances_data.png)" in section
    assert "distances_data.png" not in document[:document.index("## What the network learns")]  # not twice


def test_pre_memorization_rules_on_closed_cases():
    """Run a is nearest the Gaussian fit at its last evaluation before tau_mem (step 20 of
    tau_mem 25) and nearest the memorizer at the end, in every band: both rules hold; run b is
    nearest the patch memorizer before: only the second. A twin pair at 0.95 there (chance 0.1)
    and 0.5 at the end agrees then splits; one at 0.5 throughout does not."""
    constant_bins = lambda values: [[v] * 10 for v in values]
    curves = {"step": [10, 20, 30, 40], "distance_gaussian_bins": constant_bins([0.2, 0.1, 0.2, 0.3]),
              "distance_memorizer_bins": constant_bins([0.9, 0.5, 0.2, 0.05]),
              "distance_patch_bins": constant_bins([0.3, 0.2, 0.2, 0.2])}
    patch_first = dict(curves, distance_patch_bins=constant_bins([0.3, 0.05, 0.2, 0.2]))
    pair = lambda similarity: dict(step=[10, 20, 40], similarity=similarity, similarity_chance=[0.1] * 3,
                                   mem=[0, 0, 1], mem_twin=[0, 0, 1], twin_tau_mem=30.0, twin_seconds=60.0)
    record = {"rows": [dict(name="a", value=40, tau_mem=25.0), dict(name="b", value=80, tau_mem=25.0)],
              "curves": {"a": curves, "b": patch_first}, "twins": {"a": pair([0.9, 0.95, 0.5]), "b": pair([0.5] * 3)}}
    a, b = findings.distance_answers(record, "middle")
    assert a["before_step"] == 20 and a["closest"]["gaussian"] == pytest.approx(20 / 25)
    assert a["closest"]["memorizer"] == pytest.approx(40 / 25) and b["closest"]["patch"] == pytest.approx(20 / 25)
    assert a["before"] == pytest.approx({"gaussian": 0.1, "memorizer": 0.5, "patch": 0.2})
    gaussian_rule, either_rule = findings.DISTANCE_RULES
    for band, (before, end, held) in findings.nearest_by_band(record).items():
        assert (before, end) == (["gaussian", "patch"], ["memorizer", "memorizer"]), band
        assert held == {gaussian_rule: 1, either_rule: 2}, band
    assert [findings.twins_agree_then_split(p) for p in findings.twin_answers(record)] == [True, False]


def test_schedule_comparison_on_a_closed_case():
    """The dense schedule samples at every evaluation (10, 20, 40), the cheap one at 20 and 40:
    compared at those two, SW 10% higher at most and copies 0.05 apart at most. The rules for
    tau_mem: the gap passes 3 standard errors at 20 (cheap: 3.0 exactly) and at 10 (dense: 6
    there); the normalized gap 0.1 at 20 on both, 0.05 halfway in log(step) from 10 to 20 (cheap)
    and at 10 (dense)."""
    row = dict(name="batch_16", tau_mem=25.0, tau_gen=20.0, copy_onset=40.0, best_swd=0.1, best_swd_step=20,
               mem_at_best_swd=0.0, memorization_rate=0.5, final_mem=0.6)
    losses = dict(step=[10, 20, 40], train_loss=[0.5, 0.4, 0.3], test_loss=[0.5, 0.43, 0.5],
                  train_loss_sem=[0.006, 0.006, 0.006], test_loss_sem=[0.008, 0.008, 0.008], gap_normalized=[0.0, 0.1, 0.3])
    cheap = {"rows": [row], "curves": {"batch_16": dict(losses, sample_step=[20, 40], swd_test=[0.1, 0.2], mem=[0.0, 0.6])}}
    dense_losses = dict(losses, test_loss=[0.56, 0.43, 0.5], gap_normalized=[0.06, 0.1, 0.3])
    dense = {"rows": [dict(row, best_swd=0.11, final_mem=0.65)],
             "curves": {"batch_16": dict(dense_losses, sample_step=[10, 20, 40], swd_test=[0.3, 0.11, 0.21],
                                         mem=[0.0, 0.0, 0.65])}}
    found = findings.schedule_comparison(cheap, dense, "batch_16")
    assert found["shared_sample_steps"] == [20, 40] and found["sample_evals"] == (2, 3)
    assert found["swd_difference"] == pytest.approx(0.1) and found["mem_difference"] == pytest.approx(0.05)
    assert found["metrics"]["best_swd"] == (0.1, 0.11)
    rules = found["tau_mem_rules"]
    assert rules["gap > 3 standard errors"] == pytest.approx((20, 10))  # 0.03 / 0.01 = 3; 0.06 / 0.01 = 6
    assert rules["normalized gap crosses 0.1"] == pytest.approx((20, 20))
    assert rules["normalized gap crosses 0.05"] == pytest.approx((np.sqrt(10 * 20), 10))  # halfway in log(step)
    assert rules["smoothed test-loss minimum (ours)"] == (25.0, 25.0)
    assert findings.crossing([10, 20], [0.0, 0.01], 0.05) is None
    assert findings.schedule_comparison(cheap, dense, "batch_8") is None  # no such run in the records


def test_a_record_from_a_tree_with_uncommitted_changes_says_so(published):
    root, _, results = published
    record = json.loads((results / "cpu-data" / "record.json").read_text())
    assert record["ran_on"]["commit"] == "0123abc" and record["ran_on"]["uncommitted_changes"] is True
    assert "commit 0123abc, with uncommitted changes" in (root / "RESULTS.md").read_text()


def test_reporting_twice_writes_the_same_files(published):
    root, _, results = published
    documents = [root / name for name in ("RESULTS.md", "README.md", "METHODS.md")]
    before = [path.read_bytes() for path in documents]
    report.report(results, *documents)
    assert [path.read_bytes() for path in documents] == before
    assert "No cost plan recorded yet" in before[2].decode()  # these results hold no plan


def test_bad_record_folders_are_one_line_errors(published, tmp_path):
    _, _, results = published
    moved = tmp_path / "results"
    shutil.copytree(results / "cpu-data", moved / "cpu-model")  # another axis's folder name
    with pytest.raises(records.RecordError, match=r"cpu-model holds the record of cpu-data; move it to .*cpu-data$"):
        records.load_records(moved)
    shutil.move(moved / "cpu-model", moved / "cpu-data")
    figure = json.loads((moved / "cpu-data" / "record.json").read_text())["figures"][0]
    (moved / "cpu-data" / figure).unlink()
    with pytest.raises(records.RecordError, match=f"cpu-data lacks {figure}; publish it again"):
        records.load_records(moved)
    (moved / "cpu-data" / "record.json").write_text('{"kind": "sw')  # cut short
    with pytest.raises(records.RecordError, match="no readable record.json"):
        records.load_records(moved)
    with pytest.raises(records.RecordError, match="is not a sweep directory"):
        records.publish(tmp_path / "nothing", tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()  # nothing half-written


def test_findings_rules_on_closed_cases():
    def record(axis, values, tau, best, final, field):
        rows = [dict(name=f"{axis}_{v}", value=v, tau_mem=t, tau_mem_T=t * 40 / v if axis == "data" else t * v / 4,  # T: N_min = 40, B_min = 4
                     copy_onset=2 * t, mem_at_best_swd=0.0, best_swd=b, final_mem=f)
                for v, t, b, f in zip(values, tau, best, final)]
        curves = {row["name"]: dict(swd_test=[0.1, 0.05, 0.07, 0.04], swd_train=[0.1, 0.05, 0.07, 0.04]) for row in rows}
        rec = dict(kind="sweep", preset="cpu", axis=axis, field=field, rows=rows, curves=curves)
        if axis == "data":
            rec["fit"] = dict(loglog_slope=1.1, origin_slope=5.0, origin_r2=0.99)
        return rec
    found = findings.findings({"cpu-data": record("data", [40, 80], [200, 400], [0.05, 0.04], [0.6, 0.3], "num_train"),
                             "cpu-batch": record("batch", [4, 8, 16], [800, 400, 200], [0.04, 0.05, 0.06], [0.6] * 3,
                                                 "batch_size")})
    verdicts = {finding.split(".")[0]: result for finding, _, result, _, _ in found}
    # 1: every run novel at its best and copying after tau_mem; 2: slope 1.1; 3: only the data
    # record, copies falling with N; 4: B in order, no lr record; 5: tau_mem in T equal on
    # both axes, no lr record; 6: every curve falls, rises 40%, falls again, the splits equal
    assert verdicts == {"1": "reproduced", "2": "reproduced", "3": "reproduced so far", "4": "reproduced so far",
                        "5": "reproduced so far", "6": "reproduced"}  # 3, 4, 5 lack the model or lr axis
    assert findings.double_descent([0.1, 0.05, 0.07, 0.04]) and not findings.double_descent([0.1, 0.05, 0.051, 0.04])


def test_the_speed_summary_names_where_jax_spends_more_than_torch():
    """A bench record of two configs, one at 0.80 of torch's train step and one at 1.50, the
    second profiled: the summary says the first is at or below torch, and lists the second's
    excess by kind, largest first (between operations included), with the lines of code behind
    the kind with the widest gap; the document shows that kind's heaviest JAX and torch
    operations. Sampling: JAX's time per image over torch's, from the two img/s columns."""
    kinds = lambda **ms: {kind: ms.get(kind.replace(" ", "_"), 0.0) for kind in (*profiling.KINDS, profiling.BETWEEN)}
    record = {"kind": "bench", "command": "python bench.py --suite --torch --profile DIR", "matmul_gflops": 200.0,
              "columns": ["config", "JAX ms", "sample img/s", "torch eager ms", "JAX/eager", "torch sample img/s"],
              "rows": [["small", "8.0", "100", "10.0", "0.80", "50"], ["large", "150.0", "10", "100.0", "1.50", "12"]],
              "profiles": {"large": {"train": {
                  "jax": kinds(convolution=20, layout_copy=60, elementwise=30, between_operations=40),
                  "torch": kinds(convolution=70, layout_copy=5, elementwise=20, between_operations=5),
                  "jax_top": [[31.0, "layout copy", "transpose_copy_fusion.3", "f32[32,16,16,128]", ""],
                              [9.0, "convolution", "convolution.1", "f32[16,3,3,16]", "conv (unet.py:134)"]],
                  "jax_lines": [[40.0, "layout copy", "attention (unet.py:311)"], [9.0, "convolution", "conv (unet.py:134)"]],
                  "torch_top": [[4.0, "layout copy", "aten::copy_", "", ""]]}}},
              "ran_on": {}}
    answers = report.speed_answers(record)
    assert answers[0] == ("small", 0.8, [], None)
    assert answers[1][:2] == ("large", 1.5) and answers[1][3] == "layout copy"
    assert [kind for kind, _ in answers[1][2]][:3] == ["layout copy", "between operations", "elementwise"]
    assert dict(answers[1][2])["convolution"] == pytest.approx(-50)
    assert [(config, ratio) for config, ratio, *_ in report.speed_answers(record, "sample")] == [("small", 0.5),
                                                                                               ("large", 1.2)]
    summary = report.speed_summary(record)
    assert "- train step, small: JAX / torch eager time 0.80, at or below torch." in summary
    assert "layout copy +55.0 ms, between operations +35.0 ms, elementwise +10.0 ms" in summary
    assert "The widest gap is in layout copy work; JAX's time there is mostly in `attention (unet.py:311)` 40.0 ms." in summary
    assert "- sampler's Euler step, large: JAX / torch eager time 1.20; not profiled" in summary
    section = "\n".join(report.bench_section(record))
    assert "### Where the time goes: train step, large" in section and "Where the time goes: train step, small" not in section
    assert "| layout copy | 60.0 | 40% | 5.0 | 5% | +55.0 |" in section
    assert "transpose_copy_fusion.3 `f32[32,16,16,128]` 31.00" in section and "`aten::copy_` 4.00" in section
    assert "convolution.1" not in section  # only the kind with the widest gap is itemized


def test_the_cost_plan_record_and_its_text(tmp_path, monkeypatch):
    """publish_plan asks plan.py for each table and share (stood in for here: the paper model's
    cost analysis takes minutes) and report.plan_text writes METHODS.md's block from the record."""
    import plan

    asked = []

    def fake_plan_table(named_configs, hardware="H100", devices=1, utilization=0.4, bf16=False):
        asked.append(([name for name, _ in named_configs], hardware, devices))
        names = [name for name, _ in named_configs]
        shares = {name: 0.1 * (i + 1) for i, name in enumerate(names)}
        if named_configs[0][1].num_sample_evals == 30:  # the dense preset's default run
            shares = {"run": 0.9}
        if len(names) > 1:
            shares["total"] = 0.25
        return [f"header {hardware} x {devices}", "columns", *[f"row {name}" for name in names]], shares

    monkeypatch.setattr(plan, "plan_table", fake_plan_table)
    records.publish_plan("paper", tmp_path)
    record = records.load_records(tmp_path)["plan-paper"]
    assert [t["axis"] for t in record["tables"]] == [None, "data"]
    assert record["tables"][1]["lines"][0] == "header TPU-v5p x 16"
    assert set(record["shares"]["axes"]) == set(study.AXES["paper"])
    assert (["data_2048", "data_4096", "data_8192", "data_16384"], "TPU-v5p", 16) in asked
    text = report.plan_text(record)
    assert "`python sweep.py --axis data --preset paper --plan --hardware TPU-v5p --devices 16 --utilization 0.4`:" in text
    assert "`python plan.py --preset paper --hardware H100 --devices 1 --utilization 0.4`:" in text
    assert "25.0% of the data axis (its data_16384 run spends the largest share on it, 40.0%)" in text
    assert "evaluation share is 90.0% (its evaluation costs 9.0 times its training), against 10.0%" in text


def test_the_readme_shows_the_summary_table_the_sweep_printed(published, capsys):
    """The README's first-line block is the batch axis' summary as sweep.py prints it, written
    from the committed record: here the data axis' record against the data sweep's own print."""
    root, out, results = published
    sweep.main(["--axis", "data", "--preset", "cpu", "--out", str(out), "--summary", "--twin", *tiny_flags()])
    printed = capsys.readouterr().out
    text = report.first_line_summary(records.load_records(results)["cpu-data"])
    table = text.split("```")[1].strip("\n")
    assert table.splitlines()[1].startswith("data_40") and table in printed
    assert "runs trained in" in text and "No record of the batch axis yet" in (root / "README.md").read_text()
