"""FeatureSelectionTrainer and stochastic gates: optimizers, penalty, selection, and Madelon recovery."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import norm
from torch import nn

from trainables import EarlyStopping, FeatureSelectionModel, FeatureSelectionTrainer, GatedClassifier, StochasticGates
from trainables.data import load_data
from trainables.tasks import train_feature_selection


def _model(splits, **kwargs) -> FeatureSelectionModel:
    torch.manual_seed(0)
    return FeatureSelectionModel(splits.num_features, splits.num_classes, hidden_sizes=(16,), **kwargs)


# ------------------------------------------------------------------ gates
def test_penalty_is_the_expected_number_of_open_gates():
    gates = StochasticGates(5, sigma=0.3)
    mu = [-1.0, -0.5, -0.2, 0.0, 0.7]
    with torch.no_grad():
        gates.mu.copy_(torch.tensor(mu))
    expected = norm.cdf((torch.tensor(mu).numpy() + 0.5) / 0.3)

    torch.testing.assert_close(gates.open_probabilities(), torch.tensor(expected, dtype=torch.float32))
    assert gates.penalty().item() == pytest.approx(expected.sum(), rel=1e-6)
    assert gates.selected_mask().tolist() == [False, False, True, True, True]


def test_penalty_has_a_gradient_towards_closing_the_gates():
    gates = StochasticGates(3)
    gates.penalty().backward()
    assert (gates.mu.grad > 0).all()  # gradient descent lowers mu: fewer open gates


def test_gates_are_deterministic_in_eval_and_noisy_in_training():
    gates = StochasticGates(4, sigma=0.5)
    with torch.no_grad():
        gates.mu.copy_(torch.tensor([-0.6, -0.25, 0.0, 0.8]))
    x = torch.ones(3, 4)
    gates.eval()
    expected = torch.tensor([0.0, 0.25, 0.5, 1.0]).expand(3, 4)
    torch.testing.assert_close(gates(x), expected)
    gates.train()
    torch.manual_seed(0)
    noisy = gates(x)
    assert not torch.equal(noisy, expected)
    assert ((noisy >= 0) & (noisy <= 1)).all()


def test_gates_reject_the_wrong_width_and_bad_sigma():
    with pytest.raises(ValueError, match=r"expects 4 features, got inputs of shape \(2, 5\)"):
        StochasticGates(4)(torch.ones(2, 5))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        StochasticGates(4, sigma=0)


def test_frozen_gates_keep_their_evaluation_values_in_training_and_stop_learning():
    gates = StochasticGates(5, sigma=0.5)
    mu = torch.tensor([-2.0, -0.25, 0.1, 1.3, -0.5])
    with torch.no_grad():
        gates.mu.copy_(mu)
    gates.freeze()  # at the current gates: features 1, 2, 3 selected
    assert torch.equal(gates.mu, mu) and not gates.mu.requires_grad
    assert gates.selected_mask().tolist() == [False, True, True, True, False]
    gates.train()  # no noise any more, in training too: each feature scaled by its evaluation gate
    x = torch.full((3, 5), 2.0)
    torch.testing.assert_close(gates(x), torch.tensor([0.0, 0.5, 1.2, 2.0, 0.0]).expand(3, 5))

    other = StochasticGates(3)
    with torch.no_grad():
        other.mu.copy_(torch.tensor([-1.0, 0.2, 0.3]))
    other.freeze([True, False, True])  # a mask given: feature 0 opens fully, feature 1 is shut, 2 keeps its gate
    assert other.selected_mask().tolist() == [True, False, True]
    loaded = StochasticGates(3)
    loaded.load_state_dict(other.state_dict())  # a model loaded from the state dict selects and gates the same
    torch.testing.assert_close(loaded.eval()(torch.ones(1, 3)), torch.tensor([[1.0, 0.0, 0.8]]))
    with pytest.raises(ValueError, match=r"freeze: a mask of \(2,\) for 3 gates"):
        StochasticGates(3).freeze([True, False])


def test_a_fit_with_frozen_gates_trains_only_the_classifier(small_madelon):
    splits = small_madelon
    model = _model(splits)
    keep = torch.zeros(splits.num_features, dtype=torch.bool)
    keep[[0, 3, 7]] = True
    model.gates.freeze(keep)
    mu, first = model.gates.mu.detach().clone(), model.classifier[0].weight.detach().clone()
    trainer = FeatureSelectionTrainer(model, lr=1e-2, sparsity_lambda=0.5, feature_names=splits.feature_names)
    history = trainer.fit(splits.loader("train", 64), 3, splits.loader("val", 64))
    assert torch.equal(model.gates.mu, mu) and history["num_selected"] == [3, 3, 3]
    assert trainer.selected_features() == [splits.feature_names[i] for i in (0, 3, 7)]
    assert not torch.equal(model.classifier[0].weight, first)


# ---------------------------------------------------------------- trainer
def test_two_optimizers_with_the_selector_learning_faster(small_madelon):
    model = _model(small_madelon)
    trainer = FeatureSelectionTrainer(model, lr=2e-3)

    assert trainer.optimizers == [trainer.classifier_optimizer, trainer.selector_optimizer]
    (classifier_group,) = trainer.classifier_optimizer.param_groups
    (selector_group,) = trainer.selector_optimizer.param_groups
    assert classifier_group["lr"] == 2e-3
    assert selector_group["lr"] == pytest.approx(2e-2)  # default ratio 10
    assert [id(p) for p in selector_group["params"]] == [id(model.gates.mu)]
    assert {id(p) for p in classifier_group["params"]} == {id(p) for p in model.classifier.parameters()}

    other = FeatureSelectionTrainer(_model(small_madelon), lr=2e-3, selector_lr_ratio=4, optimizer="sgd",
                                    weight_decay=0.1)
    assert other.selector_optimizer.param_groups[0]["lr"] == pytest.approx(8e-3)
    assert other.classifier_optimizer.param_groups[0]["weight_decay"] == 0.1
    assert other.selector_optimizer.param_groups[0]["weight_decay"] == 0.0
    assert isinstance(other.selector_optimizer, torch.optim.SGD)


def test_loss_is_task_loss_plus_lambda_times_penalty(small_madelon):
    splits = small_madelon
    trainer = FeatureSelectionTrainer(_model(splits), lr=1e-2, sparsity_lambda=0.5, feature_names=splits.feature_names)
    history = trainer.fit(splits.loader("train", 64), 3, splits.loader("val", 64))

    for part in ("train", "val"):
        for total, task, penalty in zip(history[f"{part}_loss"], history[f"{part}_task_loss"],
                                        history[f"{part}_penalty"]):
            assert total == pytest.approx(task + 0.5 * penalty, rel=1e-5)
    # The penalty is about 0.5 per gate (all start half open) and shrinks as gates close.
    assert 0 < history["train_penalty"][-1] < history["train_penalty"][0] <= splits.num_features
    assert history["val_penalty"][-1] == pytest.approx(trainer.gates.penalty().item(), rel=1e-6)
    assert history["expected_open_gates"][-1] == pytest.approx(trainer.gates.penalty().item(), rel=1e-6)


def test_one_batch_loss_matches_a_direct_computation(small_madelon):
    splits = small_madelon
    model = _model(splits)
    trainer = FeatureSelectionTrainer(model, sparsity_lambda=0.25, device="cpu")
    x, y = splits.tensors("val")
    model.eval()
    with torch.no_grad():
        task = nn.functional.cross_entropy(model(x), y).item()
    step = trainer.eval_step((x, y))
    assert step["task_loss"] == pytest.approx(task, rel=1e-6)
    assert step["penalty"] == pytest.approx(splits.num_features * norm.cdf(0.5 / 0.5), rel=1e-6)
    assert step["loss"] == pytest.approx(task + 0.25 * step["penalty"], rel=1e-6)


def test_selection_is_reported_by_feature_name(small_madelon):
    splits = small_madelon
    model = _model(splits)
    trainer = FeatureSelectionTrainer(model, feature_names=splits.feature_names, device="cpu")
    mu = torch.full((splits.num_features,), -2.0)
    mu[[1, 4]] = 1.0
    with torch.no_grad():
        model.gates.mu.copy_(mu)

    probs = trainer.gate_probabilities()
    assert list(probs) == list(splits.feature_names)
    assert probs[splits.feature_names[1]] == pytest.approx(norm.cdf(1.5 / 0.5), rel=1e-6)
    assert probs[splits.feature_names[0]] == pytest.approx(norm.cdf(-1.5 / 0.5), rel=1e-5)
    assert trainer.selected_features() == [splits.feature_names[1], splits.feature_names[4]]
    summary = trainer.selection_summary()
    assert summary["selected"] == trainer.selected_features()
    assert dict(zip(summary["feature_names"], summary["gate_probabilities"])) == probs

    unnamed = FeatureSelectionTrainer(model)
    assert unnamed.selected_features() == ["f1", "f4"]


def test_num_selected_is_in_the_epoch_metrics(small_madelon):
    splits = small_madelon
    trainer = FeatureSelectionTrainer(_model(splits), lr=1e-2, sparsity_lambda=0.2, feature_names=splits.feature_names)
    history = trainer.fit(splits.loader("train", 64), 4, splits.loader("val", 64))
    assert all(isinstance(n, int) for n in history["num_selected"])
    assert history["num_selected"][-1] == len(trainer.selected_features())
    assert history["num_selected"][0] <= splits.num_features
    # Gradient clipping is on by default and covers both optimizers' parameters.
    assert all(v >= 0 for v in history["clip_fraction"]) and history["grad_norm_mean"][0] > 0


def test_trainer_rejects_models_without_gates_and_bad_settings(small_madelon):
    with pytest.raises(TypeError, match="needs a model with a `gates` StochasticGates module"):
        FeatureSelectionTrainer(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="3 feature names given for a model with 20 gates"):
        FeatureSelectionTrainer(_model(small_madelon), feature_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="selector_lr_ratio must be > 0"):
        FeatureSelectionTrainer(_model(small_madelon), selector_lr_ratio=0)
    with pytest.raises(ValueError, match="sparsity_lambda must be >= 0"):
        FeatureSelectionTrainer(_model(small_madelon), sparsity_lambda=-1)


def test_max_norm_none_disables_clipping(small_madelon):
    trainer = FeatureSelectionTrainer(_model(small_madelon), max_norm=None)
    assert "GradientClipping" not in [type(c).__name__ for c in trainer.callbacks]


# ---------------------------------------- two modules and the built-ins (seed 000)
def test_a_selector_and_a_classifier_given_apart(small_madelon):
    splits = small_madelon
    selector = StochasticGates(splits.num_features)
    classifier = nn.Sequential(nn.Linear(splits.num_features, 8), nn.ReLU(), nn.Linear(8, splits.num_classes))
    trainer = FeatureSelectionTrainer(classifier, selector, device="cpu")

    assert isinstance(trainer.model, GatedClassifier) and trainer.gates is selector
    assert trainer.model.classifier is classifier
    assert [id(p) for p in trainer.selector_optimizer.param_groups[0]["params"]] == [id(selector.mu)]
    assert {id(p) for p in trainer.classifier_optimizer.param_groups[0]["params"]} == {
        id(p) for p in classifier.parameters()}
    assert (trainer.classifier_optimizer.param_groups[0]["lr"], trainer.selector_optimizer.param_groups[0]["lr"]) \
        == (pytest.approx(0.001), pytest.approx(0.01))
    x, _ = splits.tensors("val")
    trainer.model.eval()
    torch.testing.assert_close(trainer.model(x), classifier(selector(x)))


def test_a_selector_must_be_one_and_the_model_must_not_have_one_already(small_madelon):
    with pytest.raises(TypeError, match="selector Linear is not a feature selector"):
        FeatureSelectionTrainer(nn.Linear(20, 2), nn.Linear(20, 20))
    with pytest.raises(TypeError, match="the model already has `gates`"):
        FeatureSelectionTrainer(_model(small_madelon), StochasticGates(20))


def test_selector_lr_is_given_directly_or_as_a_ratio_not_both(small_madelon):
    trainer = FeatureSelectionTrainer(_model(small_madelon), selector_lr=0.05)
    assert trainer.selector_optimizer.param_groups[0]["lr"] == 0.05
    with pytest.raises(ValueError, match="selector_lr or selector_lr_ratio, not both"):
        FeatureSelectionTrainer(_model(small_madelon), selector_lr=0.05, selector_lr_ratio=3)


def test_built_in_early_stopping_and_best_checkpoint(tmp_path, small_madelon):
    splits = small_madelon
    trainer = FeatureSelectionTrainer(_model(splits), lr=1e-2, patience=2, checkpoint_dir=tmp_path)
    history = trainer.fit(splits.loader("train", 64), 40, splits.loader("val", 64))

    early = trainer.early_stopping
    assert early.monitor == "val_task_loss" and early.restore_best_weights
    assert history.status == "early_stopping" and len(history) == early.best_epoch + 2
    assert trainer.best_checkpoint == tmp_path / "best.pt"
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    assert best["epoch"] == early.best_epoch
    for key, value in best["model"].items():  # the best weights are back in the model
        torch.testing.assert_close(trainer.model.state_dict()[key], value)


def test_built_ins_follow_the_training_loss_without_a_val_loader(small_madelon):
    trainer = FeatureSelectionTrainer(_model(small_madelon), patience=3)
    trainer.fit(small_madelon.loader("train", 64), 2)
    assert trainer.early_stopping.monitor == "train_task_loss" and trainer.early_stopping.best_epoch is not None


def test_built_in_early_stopping_is_off_by_default_and_not_doubled(small_madelon):
    assert FeatureSelectionTrainer(_model(small_madelon)).early_stopping is None
    with pytest.raises(ValueError, match="keep one of them"):
        FeatureSelectionTrainer(_model(small_madelon), patience=3, callbacks=[EarlyStopping()])


# ------------------------------------------------------- the Madelon result
def test_feature_selection_recovers_the_informative_madelon_features():
    splits = load_data({"name": "madelon", "n_samples": 1000})
    assert splits.num_features == 50 and len(splits.informative) == 5

    result = train_feature_selection({"lr": 3e-3, "sparsity_lambda": 0.01, "epochs": 80, "patience": 20},
                                     data=splits)

    selected = set(result["selected_features"])
    informative = {splits.feature_names[i] for i in splits.informative}
    assert len(selected & informative) >= 4, (sorted(selected), sorted(informative))
    assert len(selected) <= 10
    assert result["best"]["val_accuracy"] > 0.85
    assert result["test_accuracy"] > 0.8
