"""The spec: structure, every error at once with file:line, key and did-you-mean."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.spec import (
    CategoricalParam,
    Executor,
    FloatParam,
    IntParam,
    SamplerName,
    load_spec,
)
from search.spec.errors import SpecError

REPO_ROOT = Path(__file__).resolve().parents[3]


def problems_of(write_spec, text: str) -> list[str]:
    path = write_spec(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [p.format(path) for p in info.value.problems]


def test_valid_spec_is_typed(tiny_spec, write_spec):
    spec = load_spec(write_spec(tiny_spec))
    assert spec.name == "tiny"
    assert isinstance(spec.space["lr"], FloatParam) and spec.space["lr"].log
    assert spec.search.sampler is SamplerName.TPE
    assert spec.resources.executor is Executor.AUTO
    assert spec.max_epochs == 3  # from fixed.epochs when scheduler.max_t is absent
    assert spec.checkpoint_score == "val_accuracy" and spec.checkpoint_mode == "max"


def test_overrides_apply_before_validation(tiny_spec, write_spec):
    spec = load_spec(write_spec(tiny_spec), {"search.num_samples": 7, "name": "other"})
    assert spec.search.num_samples == 7 and spec.name == "other"
    with pytest.raises(SpecError, match="search.num_samples"):
        load_spec(write_spec(tiny_spec), {"search.num_samples": 0})


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("space: {lr: {type: float, low: 0.1, high: 0.01}}", r":1: space\.lr: low \(0\.1\) must be <= high \(0\.01\)"),
        ("space: {lr: {type: float, low: 0, high: 1, log: true}}", r"space\.lr: log=true needs low > 0"),
        ("space: {patience: {type: int, low: 1, high: 5, stepp: 2}}", r"space\.patience\.stepp: unknown key \(did you mean 'step'\?\)"),
        ("space: {lr: {type: floot, low: 0, high: 1}}", r"space\.lr: parameter 'type' must be one of .*did you mean 'float'"),
        ("space: {optimizer: {type: categorical, choices: []}}", r"space\.optimizer\.choices"),
        ("space: {optimizer: {type: categorical, choices: [adam, adam]}}", r"choices must be distinct"),
        ("scheduler: {max_t: 3, grace_period: 5}", r"scheduler: grace_period \(5\) must be <= max_t \(3\)"),
        ("search: {sampler: tpee}", r"unknown sampler 'tpee' \(did you mean 'tpe'\?\)"),
        ("search: {sampler: tpe, sampler_options: {n_startup: 3}}", r"has no option 'n_startup' \(did you mean 'n_startup_trials'\?\)"),
        ("metric: val_acuracy", r"metric 'val_acuracy' is never reported .*did you mean 'val_accuracy'"),
        ("trainable: feature_selectoin", r"unknown trainable 'feature_selectoin' \(did you mean 'feature_selection'\?\)"),
        ("trainable: nosuchpkg.mod:train", r"cannot import module 'nosuchpkg\.mod'"),
        ("trainable: 'search.spec:nope'", r"module 'search\.spec' has no function 'nope'"),
        ("data: {name: madelonn}", r"unknown data set 'madelonn' \(did you mean 'madelon'\?\)"),
        ("data: {name: missing/file.csv, target: y}", r"data file not found: missing/file\.csv"),
        ("fixed: {batchsize: 3}", r"fixed\.batchsize: trainable does not accept config key 'batchsize' \(did you mean 'batch_size'\?\)"),
        ("resourcse: {}", r"resourcse: unknown key \(did you mean 'resources'\?\)"),
        ("resources: {num_workers: 2, executor: direct}", r"executor 'direct' runs one worker"),
        ("resources: {use_gpu: false, gpus_per_worker: 0.5}", r"gpus_per_worker > 0 with use_gpu: false"),
        ("scheduler: {type: asha}", r"ASHA needs the most epochs a trial runs"),
        ("name: 'bad name!'", r"name: String should match pattern"),
        ("checkpoint: {frequency: 3}", r":1: checkpoint: checkpoint\.frequency is not supported: .*remove the key"),
    ],
)
def test_each_rule_reports_where_and_what(tiny_spec, write_spec, snippet, expected):
    text = f"{snippet}\n" + ("name: t\n" if not snippet.startswith("name") else "")
    if not snippet.startswith("scheduler") and "epochs" not in snippet:
        text += "fixed: {epochs: 3}\n" if not snippet.startswith("fixed") else "scheduler: {type: none}\n"
    found = "\n".join(problems_of(write_spec, text))
    import re

    assert re.search(expected, found), found


def test_all_problems_reported_at_once_with_lines(tiny_spec, write_spec):
    found = problems_of(write_spec, """
        name: t
        metric: val_acuracy
        space:
          lr: {type: float, low: 0.1, high: 0.01}
          sparsity_lamda: {type: float, low: 0, high: 1, log: true}
        fixed: {epochs: 3, batchsize: 32}
        resourcse: {}
    """)
    text = "\n".join(found)
    assert len(found) == 6, text
    assert "space.yaml:2: metric:" in text
    assert "space.yaml:4: space.lr:" in text
    assert "space.yaml:5: space.sparsity_lamda: log=true" in text
    assert "space.yaml:5: space.sparsity_lamda: trainable does not accept" in text
    assert "space.yaml:6: fixed.batchsize" in text
    assert "space.yaml:7: resourcse: unknown key" in text


def test_conditions_and_points(tiny_spec, write_spec):
    text = "\n".join(problems_of(write_spec, """
        name: t
        fixed: {epochs: 2}
        search:
          points_to_evaluate: [{lr: 5.0, momentun: 0.9}]
        space:
          lr: {type: float, low: 0.001, high: 0.1}
          dropout: {type: float, low: 0, high: 0.5, when: {optimizer: sgd}}
          optimizer: {type: categorical, choices: [adam, sgd]}
          weight_decay: {type: float, low: 0, high: 0.1, when: {optimizer: rmsprop}}
          patience: {type: int, low: 1, high: 3, when: {lr: 0.01}}
    """))
    assert "search.points_to_evaluate.0.lr: 5.0 is outside" in text
    assert "search.points_to_evaluate.0.momentun: 'momentun' is not a searched parameter" in text
    assert "space.dropout.when.optimizer: condition on 'optimizer', which must be declared before 'dropout'" in text
    assert "space.weight_decay.when.optimizer: 'rmsprop' is not one of" in text
    assert "space.patience.when.lr: conditions must refer to a categorical parameter" in text


def test_yaml_syntax_error_keeps_line_and_column(tiny_spec, write_spec):
    found = problems_of(write_spec, "name: t\nspace:\n  lr: {type: float, low: 1\n")
    assert len(found) == 1 and "YAML syntax error" in found[0] and "column" in found[0]


def test_a_key_written_twice_is_refused_with_both_lines(tiny_spec, write_spec):
    found = problems_of(write_spec, """
        name: t
        fixed: {epochs: 3}
        search:
          num_samples: 4
          num_samples: 8
        space:
          lr: {type: float, low: 0.001, high: 0.1}
          momentum: {type: float, low: 0.1, high: 0.9}
          lr: {type: float, low: 0.01, high: 0.2}
        defaults: &base {epochs: 3}
        fixed2:
          <<: *base
          <<: *base
    """)
    text = "\n".join(found)
    assert "space.yaml:5: search.num_samples: written twice (lines 4 and 5)" in text, text
    assert "space.yaml:9: space.lr: written twice (lines 7 and 9)" in text, text
    assert not any("<<" in line for line in found)  # YAML merge keys are not keys
    load_spec(write_spec(tiny_spec))  # a clean spec loads


def test_missing_file_and_non_mapping(tmp_path, write_spec):
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="a spec must be a mapping"):
        load_spec(write_spec("- just\n- a list\n"))


def test_data_file_target_checked_from_header(tmp_path, write_spec):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,x\n3,4,y\n")
    text = "\n".join(problems_of(write_spec, f"name: t\nfixed: {{epochs: 2}}\ndata: {{name: {tmp_path / 'd.csv'}, target: lable}}\n"))
    assert "column 'lable' not in d.csv (did you mean 'label'?)" in text


def test_user_trainable_next_to_spec_is_importable(tmp_path, write_spec):
    (tmp_path / "my_train.py").write_text("def train(config, report):\n    pass\n")
    spec = load_spec(write_spec("name: t\ntrainable: my_train:train\nfixed: {epochs: 2}\nmetric: anything\n"))
    assert spec.trainable == "my_train:train"  # undeclared metrics are checked at run time


def test_param_models_directly():
    assert IntParam(type="int", low=1, high=4).step == 1
    assert CategoricalParam(type="categorical", choices=[1, "a", None]).choices == [1, "a", None]
    with pytest.raises(ValueError, match="log=true needs step=1"):
        IntParam(type="int", low=1, high=8, log=True, step=2)


# ------------------------------------------------------------ several objectives
def test_a_two_objective_spec_validates_and_names_its_objectives(write_spec):
    from search.spec import load_spec

    spec = load_spec(write_spec("""
        name: mo
        metric: [val_accuracy, num_selected]
        mode: [max, min]
        select: {tolerance: 0.01}
        scheduler: {metric: val_task_loss, mode: min}
        fixed: {epochs: 5}
    """))
    assert spec.objectives == (("val_accuracy", "max"), ("num_selected", "min")) and spec.multi_objective
    assert (spec.scheduler_metric, spec.scheduler_mode) == ("val_task_loss", "min")
    assert (spec.checkpoint_score, spec.checkpoint_mode) == ("val_accuracy", "max")  # the first objective


@pytest.mark.parametrize(("lines", "line", "message"), [
    ("metric: [val_accuracy, num_selected]\nmode: max\n", 3, "mode: 1 mode(s) (max) for 2 metric(s)"),
    ("metric: [val_accuracy, num_selected]\nmode: [max, min]\nsearch: {sampler: cmaes}\n", 4,
     "cmaes optimises one objective; this spec has 2"),
    ("metric: val_accuracy\nmode: max\nselect: {tolerance: 0.1}\n", 4, "this spec has one objective"),
    ("metric: [val_accuracy, num_selected]\nmode: [max, min]\nselect: {limits: {num_features: 3}}\n", 4,
     "select.limits.num_features: not an objective"),
    ("metric: [val_accuracy, num_selected]\nmode: [max, min]\nscheduler: {metric: val_task_loss}\n", 4,
     "add scheduler.mode: min or max"),
    ("metric: [val_accuracy, num_selectd]\nmode: [max, min]\n", 2, "metric 'num_selectd' is never reported"),
])
def test_bad_objectives_are_refused_where_they_are_written(write_spec, lines, line, message):
    from search.spec import SpecError, load_spec

    path = write_spec("name: mo\n" + lines + "fixed: {epochs: 5}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    text = str(caught.value)
    assert message in text and f"{path}:{line}:" in text, text


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO_ROOT)) for p in
                                        [*REPO_ROOT.glob("spaces/*.yaml"), *REPO_ROOT.glob("examples/*/space.yaml")]))
def test_every_shipped_spec_validates(path):
    from search.spec import load_spec

    spec = load_spec(REPO_ROOT / path)
    assert spec.name and spec.space


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO_ROOT)) for p in
                                        [*REPO_ROOT.glob("spaces/*.yaml"), *REPO_ROOT.glob("examples/*/space.yaml")]))
def test_the_spec_copy_an_experiment_keeps_loads_back_to_the_same_spec(path, tmp_path):
    """`resume` loads the copy `run` wrote (every default written out, `max_t: null` among them)."""
    from search.spec import load_spec
    from search.spec.load import dump_spec

    spec = load_spec(REPO_ROOT / path)
    copy = tmp_path / "spec.yaml"
    copy.write_text(dump_spec(spec))
    assert load_spec(copy) == spec


def test_the_builtin_trainable_without_torch_installed_is_refused_at_its_line(tiny_spec, write_spec, monkeypatch):
    # The built-in trainable is declared without torch (its checks import none): an environment without torch must
    # still fail at validate, as importing the trainable did, not in every trial.
    import importlib.util

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else found(name, *a))
    problems = problems_of(write_spec, tiny_spec)
    line = next(n for n, text in enumerate(tiny_spec.lstrip("\n").splitlines(), 1) if text.startswith("trainable:"))
    assert problems == [f"{write_spec(tiny_spec)}:{line}: trainable: the built-in trainable 'feature_selection' trains "
                        "with PyTorch, which is not installed in this environment: pip install torch"]
