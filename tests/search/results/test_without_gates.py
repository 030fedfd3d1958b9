"""A model of your own without feature gates: no column of blanks, and `features` says what it needs (issue 26, item 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.results import open_results
from search.results.summary import render_summary
from tests.search.helpers import results_cli

SPEC = """
name: own
trainable: my_model:train
metric: score
mode: max
search: {num_samples: 2, seed: 0}
scheduler: {type: none}
space:
  lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
fixed: {epochs: 2}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An experiment folder as a run of a gate-less trainable leaves it: its reports carry no num_selected."""
    folder = tmp_path / "own"
    folder.mkdir()
    (folder / "spec.yaml").write_text(SPEC)
    for tid, lr, scores in (("b0000001", 0.01, (0.5, 0.7)), ("b0000002", 0.02, (0.6, 0.65))):
        trial = folder / f"trial_{tid}"
        trial.mkdir()
        (trial / "params.json").write_text(json.dumps({"lr": lr, "epochs": 2}))
        (trial / "result.json").write_text("".join(
            json.dumps({"epoch": k, "score": s, "trial_id": tid, "time_total_s": k, "done": k == 2}) + "\n"
            for k, s in enumerate(scores, 1)))
        (trial / "checkpoint_000001").mkdir()
        (trial / "checkpoint_000001" / "model.pt").write_bytes(b"not ours")
    return folder


def test_the_table_has_no_num_selected_column_and_the_summary_no_feature_line(folder: Path) -> None:
    results = open_results(folder)
    assert "num_selected" not in results.table.columns
    assert results.table["best_score"].tolist() == [0.7, 0.65]
    text, ok = render_summary(results.info.spec, None, results=results)
    assert ok and "best trial b0000001" in text
    assert "selected features" not in text and "num_selected" not in text
    code, out, err = results_cli("export", str(folder), "--format", "csv")
    assert code == 0, err
    assert "num_selected" not in out.splitlines()[0]


def test_features_says_it_needs_a_model_with_gates(folder: Path) -> None:
    code, out, err = results_cli("features", str(folder))
    assert code == 2 and out == ""
    assert "`features` needs a model with feature gates (the built-in feature_selection trainable); my_model:train " \
           "selects no features" in err, err
