"""The training library on a CUDA GPU: placement, resume on the GPU, checkpoints that move
between GPU and CPU, feature selection, and two DDP ranks sharing one GPU.

Skipped without CUDA (the project's CI has none); run on a GPU machine with
``python -m pytest -m gpu``.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, TensorDataset

from trainables import FeatureSelectionTrainer, ModelCheckpoint, Trainer
from trainables.data import DataSplits, load_data
from trainables.distributed import all_reduce_sums, world_info
from trainables.tasks import CHECKPOINT_FILE, evaluate_feature_selection, train_feature_selection

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _loaders(toy_xy, seed: int = 1) -> tuple[DataLoader, DataLoader]:
    x, y = toy_xy
    train = DataLoader(TensorDataset(x[:54], y[:54]), batch_size=16, shuffle=True,
                       generator=torch.Generator().manual_seed(seed))
    return train, DataLoader(TensorDataset(x[54:], y[54:]), batch_size=5)


def _trainer(model, callbacks=(), device=None) -> Trainer:
    return Trainer(model, "adam", lr=0.02, device=device, callbacks=list(callbacks),
                   scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7))


def test_auto_detection_trains_on_the_gpu(toy_xy, make_model):
    train, val = _loaders(toy_xy)
    trainer = _trainer(make_model())
    assert trainer.device.type == "cuda"
    history = trainer.fit(train, 6, val)
    assert all(p.is_cuda for p in trainer.model.parameters())
    assert all(s["exp_avg"].is_cuda for s in trainer.optimizer.state.values())
    assert history.status == "completed" and len(history) == 6
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert 0.0 <= history["val_accuracy"][-1] <= 1.0


def test_resume_on_the_gpu_continues_where_it_stopped(tmp_path, toy_xy, make_model):
    """4 epochs straight on the GPU == 2 epochs, a checkpoint, a new trainer and 2 more.

    The checkpoint holds CPU RNG states (torch's, the loader's, CUDA's): loading them onto
    the GPU and handing them back to their generators is what broke resume there.
    """
    train, val = _loaders(toy_xy)
    straight = _trainer(make_model(dropout=0.3), [ModelCheckpoint(tmp_path / "a")])
    straight_history = straight.fit(train, 4, val)

    train, val = _loaders(toy_xy)
    _trainer(make_model(dropout=0.3), [ModelCheckpoint(tmp_path / "b")]).fit(train, 2, val)
    torch.manual_seed(12345)
    torch.cuda.manual_seed_all(12345)
    train, val = _loaders(toy_xy, seed=999)
    resumed = _trainer(make_model(seed=7, dropout=0.3), [ModelCheckpoint(tmp_path / "b")])
    resumed.load_checkpoint(tmp_path / "b" / "last.pt")
    assert resumed.epoch == 2 and all(s["exp_avg"].is_cuda for s in resumed.optimizer.state.values())
    resumed_history = resumed.fit(train, 4, val)

    assert resumed.epoch == 4
    for name, tensor in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor, msg=name)
    assert resumed_history["val_loss"] == pytest.approx(straight_history["val_loss"], rel=1e-5)


def test_a_gpu_checkpoint_loads_on_the_cpu(tmp_path, toy_xy, make_model):
    train, val = _loaders(toy_xy)
    gpu = _trainer(make_model(), [ModelCheckpoint(tmp_path)])
    gpu.fit(train, 2, val)
    cpu = _trainer(make_model(seed=3), device="cpu")
    cpu.load_checkpoint(tmp_path / "last.pt")
    assert cpu.epoch == 2
    for name, tensor in gpu.model.state_dict().items():
        loaded = cpu.model.state_dict()[name]
        assert loaded.device.type == "cpu"
        torch.testing.assert_close(loaded, tensor.cpu(), msg=name)
    assert cpu.evaluate(val)["loss"] == pytest.approx(gpu.evaluate(val)["loss"], rel=1e-5)


@pytest.fixture(scope="module")
def madelon() -> DataSplits:
    return load_data({"name": "madelon", "n_samples": 600, "n_features": 20, "n_informative": 4})


def test_feature_selection_on_the_gpu_and_its_checkpoint_evaluated_on_the_cpu(tmp_path, madelon):
    config = {"epochs": 4, "batch_size": 32, "hidden_sizes": [16], "lr": 1e-2, "sparsity_lambda": 0.01,
              "device": "cuda"}
    rows: list[dict] = []

    def report(metrics, checkpoint_dir=None):
        rows.append(dict(metrics))
        if checkpoint_dir is not None:
            (tmp_path / CHECKPOINT_FILE).write_bytes((Path(checkpoint_dir) / CHECKPOINT_FILE).read_bytes())

    result = train_feature_selection(config, report, data=madelon)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and result["status"] == "completed"
    assert result["selected_features"] and set(result["selected_features"]) <= set(madelon.feature_names)
    # The built-in held-out evaluation runs on the CPU from the GPU's checkpoint (the last epoch's).
    on_cpu = evaluate_feature_selection(config, tmp_path, data=madelon, part="val")
    assert on_cpu["n"] == len(madelon.y_val)
    assert on_cpu["accuracy"] == pytest.approx(rows[-1]["val_accuracy"], abs=1.5 / len(madelon.y_val))


def test_feature_selection_trainer_keeps_its_gates_on_the_gpu(madelon):
    from trainables import FeatureSelectionModel

    model = FeatureSelectionModel(madelon.num_features, madelon.num_classes, (16,))
    trainer = FeatureSelectionTrainer(model, sparsity_lambda=0.01, feature_names=madelon.feature_names)
    trainer.fit(madelon.loader("train", 32, seed=0), 2, madelon.loader("val", 64))
    probs = trainer.gate_probabilities()
    assert list(probs) == list(madelon.feature_names) and all(0.0 <= p <= 1.0 for p in probs.values())
    assert all(p.is_cuda for p in trainer.model.parameters())


def _two_ranks_one_gpu(rank: int, port: int, out: str, splits: DataSplits) -> None:
    """Two DDP ranks on cuda:0 over gloo (NCCL refuses two ranks on one device)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    try:
        rows = []
        train_feature_selection({"epochs": 2, "batch_size": 32, "hidden_sizes": [8], "lr": 1e-2, "device": "cuda:0"},
                                lambda metrics, checkpoint_dir=None: rows.append(dict(metrics)),
                                data=splits, world=world_info())
        sums = all_reduce_sums({"rank_plus_one": rank + 1.0}, torch.device("cuda", 0))
        (Path(out) / f"rank{rank}.json").write_text(json.dumps({"rows": rows, "sums": sums}))
    finally:
        import gc

        gc.collect()
        dist.destroy_process_group()


def test_two_ddp_ranks_share_one_gpu_over_gloo(tmp_path, madelon):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_two_ranks_one_gpu, args=(port, str(tmp_path), madelon), nprocs=2, join=True)
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert zero["sums"] == one["sums"] == {"rank_plus_one": 3.0}
    assert [r["epoch"] for r in zero["rows"]] == [1, 2]
    for a, b in zip(zero["rows"], one["rows"]):
        assert a["val_accuracy"] == b["val_accuracy"] and a["val_loss"] == b["val_loss"]
