"""The benchmarks' own arithmetic and command lines, without running an arm (no Ray started, no training).

A benchmark that mislabels, miscounts or cannot be asked for an arm writes a wrong table into the docs;
these check what turns measurements into figures and verdicts.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as a module (it puts the repository on ``sys.path`` itself)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}_under_test", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def epoch_overhead() -> ModuleType:
    return _script("epoch_overhead")


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    return _script("scale")


# ---------------------------------------------------------------- epoch_overhead.py


def test_every_arm_can_be_asked_for_by_name(epoch_overhead, capsys):
    """``--arms`` is comma-separated: an arm whose name holds a comma could not be run on its own."""
    for arm in epoch_overhead.ARMS:
        assert "," not in arm, arm
        assert epoch_overhead.main(["--arms", arm, "--repeats", "0"]) == 0  # parsed; nothing run
    assert "the standalone and ours arms are needed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        epoch_overhead.main(["--arms", "ours,a checkpoint every epoch", "--repeats", "0"])
    assert exc.value.code == 2
    assert "unknown arm(s) 'a checkpoint every epoch'" in capsys.readouterr().err


def _run(gap_s: float, epochs: int, saved: int, tune: bool) -> dict:
    stamps = [[t * gap_s for t in range(epochs)], [0.01 + t * gap_s for t in range(epochs)]]
    # The driver's (main thread, whole process) CPU seconds at each of its results: 4 and 10 ms a result.
    cpu = [(0.004 * i, 0.010 * i) for i in range(2 * epochs)] if tune else []
    return {"trials": stamps, "compute": [gap_s * 0.9] * (2 * epochs - 2), "saved": saved,
            "iters": [gap_s * 0.95] * (2 * epochs - 2) if tune else None,
            "between": [0.03] if tune else None, "cpu": cpu}


def test_figures_count_the_epochs_checkpointed_and_time_epochs_after_the_first(epoch_overhead):
    figs = epoch_overhead.figures(_run(0.1, 5, saved=4, tune=True))
    assert figs["epoch_ms"] == pytest.approx(100.0)
    assert figs["saved_pct"] == pytest.approx(40.0)  # 4 of 10 epochs
    assert figs["iter_ms"] == pytest.approx(95.0) and figs["between_ms"] == pytest.approx(30.0)
    assert figs["driver_cpu_ms"] == pytest.approx(4.0) and figs["driver_all_cpu_ms"] == pytest.approx(10.0)
    standalone = epoch_overhead.figures(_run(0.1, 5, saved=10, tune=False))
    assert "iter_ms" not in standalone and "driver_cpu_ms" not in standalone


@pytest.mark.parametrize(("ours_gap", "verdict"), [(0.130, "FAIL (+15 points)"), (0.110, "PASS")])
def test_the_table_judges_ours_on_the_paired_ratio_against_the_target(epoch_overhead, ours_gap, verdict):
    results = {arm: [] for arm in epoch_overhead.ARMS}
    results["standalone"].append(epoch_overhead.figures(_run(0.100, 5, saved=6, tune=False)))
    results["ours"].append(epoch_overhead.figures(_run(ours_gap, 5, saved=6, tune=True)))
    results[epoch_overhead.EVERY_EPOCH].append(epoch_overhead.figures(_run(0.140, 5, saved=10, tune=True)))
    args = argparse.Namespace(trials=2, epochs=5, repeats=1)
    text = epoch_overhead.table(results, args, (0.5, 0.7), ["--trials", "2"])
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert set(rows) == {"arm", "standalone", "ours", epoch_overhead.EVERY_EPOCH}  # only the arms that ran
    assert rows["standalone"].startswith("| standalone | 1 | 60 % | 100.0 | 1.00× |") and "baseline" in rows["standalone"]
    ratio = ours_gap / 0.100
    assert rows["ours"].startswith(f"| ours | 1 | 60 % | {ours_gap * 1e3:.1f} | {ratio:.2f}× | **{ratio:.2f}×**")
    assert rows["ours"].endswith(f"| ≤ 1.15 | {verdict} |")
    assert "| 4.0 / 10.0 |" in rows["ours"] and "| — | — | 102.5 |" in rows["standalone"]  # the driver's CPU a result
    assert f"| {epoch_overhead.EVERY_EPOCH} | 1 | 100 % | 140.0 | 1.40× |" in rows[epoch_overhead.EVERY_EPOCH]
    assert rows[epoch_overhead.EVERY_EPOCH].endswith("| — | reference |")
    assert "`python benchmarks/epoch_overhead.py --trials 2`" in text and "CPUs" in text


# ---------------------------------------------------------------- scale.py


def _record(scale, trials: int, series: list[tuple[int, float]], quarter: float, end: float):
    return scale.RunRecord(path="ours", trials=trials, sleep_s=1.0, wall_s=0.0, fit_s=0.0, peak_rss_mb=0.0,
                           end_rss_mb=0.0, anon_series=series,
                           rss_kinds_at={"25%": {"RssAnon": quarter}, "100%": {"RssAnon": end}})


def test_driver_memory_a_trial_in_the_search_to_the_end_and_after_the_last(scale):
    # 0.1 MB a trial while 100 trials run, then 20 MB after the last one (the run's end).
    series = [(done, 300.0 + 0.1 * done) for done in range(0, 100)] + [(100, 310.0), (100, 330.0), (100, 325.0)]
    record = _record(scale, 100, series, quarter=302.5, end=330.0)
    assert scale.anon_in_search(record) == pytest.approx(0.1)  # only samples from 25 trials done to the last
    assert scale.anon_to_end(record) == pytest.approx((330.0 - 302.5) / 75)
    assert scale.anon_after_last(record) == pytest.approx(20.0)  # the largest sample after, less the first
    assert math.isnan(scale.anon_in_search(_record(scale, 100, [(30, 1.0), (30, 2.0)], 1.0, 2.0)))


def test_beyond_tune_compares_the_largest_size_both_ran_and_a_missing_figure_is_no_verdict(scale):
    def row(path: str, slope: float) -> object:
        series = [(done, 300.0 + slope * done) for done in range(100)]
        return scale.Row(path, 100, [_record(scale, 100, series, 300.0 + slope * 25, 300.0 + slope * 100)])

    beyond = scale.beyond_tune([row("ours", 0.12), row("tune", 0.09)], 100)
    assert beyond == pytest.approx((0.03, 0.03))
    assert scale.beyond_ok(beyond) is True
    assert scale.beyond_ok(scale.beyond_tune([row("ours", 0.2), row("tune", 0.09)], 100)) is False
    assert scale.beyond_tune([row("ours", 0.12)], 100) is None and scale.beyond_ok(None) is None
    assert scale.beyond_ok((float("nan"), 0.0)) is None


# ---------------------------------------------------------------- gpu_trials.py


@pytest.fixture(scope="module")
def gpu_trials() -> ModuleType:
    return _script("gpu_trials")


def _gpu_run(arm: str, span_s: float, trials: int = 8) -> dict:
    return {"arm": arm, "trials": trials, "wall_s": span_s + 20, "span_s": span_s, "outcomes": ["completed"],
            "best": 0.8, "per_trial_s": 3.0}


def test_gpu_runs_interleave_the_baseline_and_the_sharing_arms_and_run_ddp_last(gpu_trials, capsys):
    assert gpu_trials.plan_arms(["one", "four", "eight", "ddp"], 2) == ["one", "four", "eight"] * 2 + ["ddp"]
    assert gpu_trials.plan_arms(["four", "one"], 1) == ["one", "four"]
    with pytest.raises(SystemExit) as exc:
        gpu_trials.main(["--arms", "one,nine"])
    assert exc.value.code == 2
    assert "unknown arm(s) 'nine'" in capsys.readouterr().err


def test_the_gpu_table_rates_each_arm_against_one_per_gpu_with_and_without_mps(gpu_trials):
    runs = [_gpu_run("one", 40.0), _gpu_run("one", 60.0), _gpu_run("four", 20.0), _gpu_run("eight", 10.0),
            _gpu_run("four+mps", 12.5), _gpu_run("ddp", 30.0, trials=2)]
    setup = {"trials": 8, "ddp_trials": 2, "epochs": 4, "samples": 20000, "command": "python benchmarks/gpu_trials.py"}
    text = gpu_trials.table({"runs": runs, "facts": {"mps": "started (nvidia-cuda-mps-control -d)"}, "setup": setup})
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in text.splitlines() if line.startswith("| ")}
    # 1 per GPU: the median of 720 and 480 trials an hour, 600; the others against it.
    assert rows["1 trial per GPU"][4] == "600" and rows["1 trial per GPU"][8] == "1.00×"
    assert rows["4 trials per GPU"][8] == "2.40×"
    assert rows["8 trials per GPU"][8] == "4.80×"
    assert rows["4 trials per GPU, with MPS"][8] == "3.84×"
    assert rows["DDP, 2 workers x 0.5 GPU"][8] == "—"
    assert "**4 trials per GPU: 2.40× the trials per hour of 1 per GPU** (goal ≥ 3×: FAIL, short by 0.60×)" in text
    assert "**4 trials per GPU, with MPS: 3.84× the trials per hour of 1 per GPU** (goal ≥ 3×: PASS)" in text
    assert "MPS: started (nvidia-cuda-mps-control -d)." in text


def test_mps_that_cannot_start_says_why_and_leaves_no_environment(gpu_trials, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-cuda-mps-control on it
    env, said = gpu_trials.start_mps(tmp_path / "mps")
    assert env is None
    assert said == "not started: nvidia-cuda-mps-control is not installed"


def test_every_gpu_arm_writes_a_spec_that_validates(gpu_trials):
    from search.spec import Spec

    for arm in [*gpu_trials.ARMS, *(a + gpu_trials.MPS for a in gpu_trials.SHARING)]:
        spec = Spec.model_validate(gpu_trials.spec_dict(arm, 4, 2, 4000))
        assert spec.resources.use_gpu is True
        assert spec.resources.gpus_per_worker == gpu_trials.ARMS[arm.removesuffix(gpu_trials.MPS)][1]["gpus_per_worker"]
    assert Spec.model_validate(gpu_trials.spec_dict("eight", 4, 2, 4000)).resources.gpus_per_worker == 0.125
