"""Distributed training: two CPU processes (gloo) running the built-in trainable under DDP."""

from __future__ import annotations

import gc
import json
import os
import shutil
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler

from trainables import FeatureSelectionModel, FeatureSelectionTrainer
from trainables.data import DataSplits, load_data
from trainables.distributed import ShardSampler, WorldInfo, all_reduce_sums, unwrap_model, world_info
from trainables.tasks import CHECKPOINT_FILE

WORLD_SIZE = 2
CONFIG = {"epochs": 3, "batch_size": 32, "hidden_sizes": [8], "lr": 1e-2, "patience": 10, "sparsity_lambda": 0.05,
          "checkpoint_every_s": 0}


def _destroy_group() -> None:
    """Free every DDP model, then leave the group.

    torch 2.13 (gloo, CPU): a process that destroys its group while a ``DistributedDataParallel`` model is
    still alive aborts at exit about one time in seven ("terminate called without an active exception",
    SIGABRT, no Python frame). The Trainer's callbacks hold it in reference cycles, so collect first.
    """
    gc.collect()
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, out: str, splits: DataSplits) -> None:
    """One rank: join the group, train, and write what it saw to ``out/rank{rank}.json``."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=60))
    try:
        from trainables.tasks import train_feature_selection

        world = world_info()
        rows = []

        def report(metrics, checkpoint_dir=None):
            rows.append({"metrics": dict(metrics), "checkpoint": checkpoint_dir is not None})
            if checkpoint_dir is not None:
                shutil.copy(Path(checkpoint_dir) / CHECKPOINT_FILE, Path(out) / f"rank{rank}-epoch{metrics['epoch']}.pt")

        train_feature_selection(CONFIG, report, data=splits, world=world)
        # The global RNG, the source of gate noise and dropout, after the same number of draws on each rank.
        summary = {"rank": world.rank, "world_size": world.world_size, "rows": rows, "next_noise": torch.randn(4).tolist()}
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(summary))
    finally:
        _destroy_group()


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, DataSplits]:
    # 201 validation samples: an odd count, so the two ranks' val shards differ in size.
    splits = load_data({"name": "madelon", "n_samples": 600, "n_features": 12, "n_informative": 3,
                        "val_fraction": 0.335, "test_fraction": 0.0})
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out), splits), nprocs=WORLD_SIZE, join=True)
    return out, splits


def _rows(out: Path, rank: int) -> dict:
    return json.loads((out / f"rank{rank}.json").read_text())


@pytest.mark.slow
def test_every_rank_sees_the_same_all_reduced_metrics(ddp_run):
    out, _ = ddp_run
    ranks = [_rows(out, r) for r in range(WORLD_SIZE)]
    assert [(r["rank"], r["world_size"]) for r in ranks] == [(0, 2), (1, 2)]
    for r in ranks:
        assert [row["metrics"]["epoch"] for row in r["rows"]] == [1, 2, 3]
    for zero, one in zip(ranks[0]["rows"], ranks[1]["rows"]):
        for key in ("val_loss", "val_accuracy", "val_task_loss", "val_penalty", "train_loss", "num_selected"):
            assert zero["metrics"][key] == one["metrics"][key], key


@pytest.mark.slow
def test_each_rank_draws_its_own_gate_noise(ddp_run):
    out, _ = ddp_run
    zero, one = (_rows(out, r)["next_noise"] for r in range(WORLD_SIZE))
    assert zero != one  # same seed, same number of draws per rank: the streams differ only by rank


@pytest.mark.slow
def test_only_rank_zero_writes_checkpoints(ddp_run):
    out, _ = ddp_run
    assert [row["checkpoint"] for row in _rows(out, 0)["rows"]] == [True, True, True]
    assert [row["checkpoint"] for row in _rows(out, 1)["rows"]] == [False, False, False]
    assert sorted(p.name for p in out.glob("*.pt")) == ["rank0-epoch1.pt", "rank0-epoch2.pt", "rank0-epoch3.pt"]


@pytest.mark.slow
def test_global_val_metrics_equal_a_single_process_evaluation(ddp_run):
    out, splits = ddp_run
    assert len(splits.y_val) == 201
    last = _rows(out, 0)["rows"][-1]["metrics"]
    model = FeatureSelectionModel(splits.num_features, splits.num_classes, hidden_sizes=(8,))
    trainer = FeatureSelectionTrainer(model, sparsity_lambda=CONFIG["sparsity_lambda"])
    trainer.load_checkpoint(out / "rank0-epoch3.pt", load_optimizer=False, load_callbacks=False)

    single = trainer.evaluate(splits.loader("val", 64))

    # The accuracy is a count over 201 samples: any lost or doubled sample would show.
    assert last["val_accuracy"] * 201 == pytest.approx(round(last["val_accuracy"] * 201), abs=1e-6)
    assert last["val_accuracy"] == pytest.approx(single["accuracy"], abs=1e-9)
    assert last["val_loss"] == pytest.approx(single["loss"], rel=1e-5)


# ------------------------------------------------------------ single-process parts
@pytest.mark.parametrize(("n", "world_size"), [(10, 2), (11, 2), (7, 3), (2, 4)])
def test_shard_sampler_covers_every_index_exactly_once(n, world_size):
    shards = [list(ShardSampler(n, rank, world_size)) for rank in range(world_size)]
    assert sorted(i for shard in shards for i in shard) == list(range(n))
    assert [len(ShardSampler(n, rank, world_size)) for rank in range(world_size)] == [len(s) for s in shards]
    # DistributedSampler pads instead: the reason ShardSampler exists.
    padded = sum(len(DistributedSampler(range(n), num_replicas=world_size, rank=r, shuffle=False))
                 for r in range(world_size))
    assert padded >= n


def test_a_single_process_is_rank_zero_of_one():
    info = world_info()
    assert info == WorldInfo(0, 1, 0)
    assert info.is_main and not info.is_distributed
    assert WorldInfo(1, 2).is_distributed and not WorldInfo(1, 2).is_main
    assert all_reduce_sums({"loss": 2.5, "n": 4}, torch.device("cpu")) == {"loss": 2.5, "n": 4}


def test_unwrap_model_returns_the_inner_module():
    inner = torch.nn.Linear(2, 2)
    assert unwrap_model(torch.nn.DataParallel(inner)) is inner
    assert unwrap_model(inner) is inner


def test_shard_sampler_drives_a_loader(small_madelon):
    x, y = small_madelon.tensors("val")
    seen = []
    for rank in range(3):
        loader = DataLoader(range(len(y)), batch_size=7, sampler=ShardSampler(len(y), rank, 3))
        seen += [int(i) for batch in loader for i in batch]
    assert sorted(seen) == list(range(len(y)))


def _nan_worker(rank: int, port: int, out: str) -> None:
    """Rank 1's loss turns NaN at its 3rd step; both ranks must stop together, not hang."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=30))
    try:
        _nan_training(rank, out)
    finally:
        _destroy_group()


def _nan_training(rank: int, out: str) -> None:
    """The training itself: its locals (the DDP model) are gone when it returns."""
    from trainables import Trainer

    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 2))
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    loader = DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    calls = {"n": 0}

    def loss_fn(outputs, targets):
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(outputs, targets)
        return loss * float("nan") if rank == 1 and calls["n"] == 3 else loss

    trainer = Trainer(model, "sgd", loss_fn, lr=0.1, device="cpu")
    history = trainer.fit(loader, epochs=3)
    (Path(out) / f"nan{rank}.json").write_text(json.dumps({"status": history.status, "epochs": len(history)}))


@pytest.mark.slow
def test_nonfinite_loss_on_one_rank_stops_every_rank_without_hanging(tmp_path):
    mp.spawn(_nan_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    seen = [json.loads((tmp_path / f"nan{r}.json").read_text()) for r in range(WORLD_SIZE)]
    assert seen == [{"status": "diverged", "epochs": 1}] * WORLD_SIZE


def _bn_worker(rank: int, port: int, out: str, n_val: int) -> None:
    """Two ranks, a model with BatchNorm (buffers DDP broadcasts), validation shards of unequal length."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # A hang would be a collective waiting for a rank that never comes: make it an error within seconds.
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=20))
    try:
        _bn_training(rank, out, n_val)
    finally:
        _destroy_group()


def _bn_data(n: int, seed: int) -> torch.utils.data.TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.TensorDataset(torch.randn(n, 4, generator=gen), torch.randint(0, 2, (n,), generator=gen))


def _bn_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _bn_training(rank: int, out: str, n_val: int) -> None:
    from trainables import Trainer

    train, val = _bn_data(32, 1), _bn_data(n_val, 2)
    model = torch.nn.parallel.DistributedDataParallel(_bn_model())
    trainer = Trainer(model, "sgd", "cross_entropy", lr=0.1, device="cpu")
    history = trainer.fit(DataLoader(train, batch_size=4, sampler=DistributedSampler(train, shuffle=False)), epochs=2,
                          val_loader=DataLoader(val, batch_size=2, sampler=ShardSampler(n_val, rank, WORLD_SIZE)))
    last = {k: v for k, v in history.epochs[-1].items() if k.startswith("val_")}
    (Path(out) / f"bn{rank}.json").write_text(json.dumps(last))
    if rank == 0:
        torch.save(unwrap_model(model).state_dict(), Path(out) / "bn.pt")


@pytest.mark.slow
@pytest.mark.parametrize("n_val", [5, 1])  # 3 and 2 samples (2 batches and 1); 1 and 0 (rank 1 has none)
def test_ddp_evaluation_with_batchnorm_and_uneven_or_empty_shards_does_not_hang(tmp_path, n_val):
    from trainables import Trainer

    mp.spawn(_bn_worker, args=(_free_port(), str(tmp_path), n_val), nprocs=WORLD_SIZE, join=True)
    zero, one = (json.loads((tmp_path / f"bn{r}.json").read_text()) for r in range(WORLD_SIZE))
    assert zero == one and {"val_loss", "val_accuracy"} <= set(zero)
    # The global metrics are those of one process evaluating every validation sample once.
    model = _bn_model()
    model.load_state_dict(torch.load(tmp_path / "bn.pt"))
    single = Trainer(model, "sgd", "cross_entropy", device="cpu").evaluate(DataLoader(_bn_data(n_val, 2), batch_size=2))
    assert zero["val_loss"] == pytest.approx(single["loss"], rel=1e-5)
    assert zero["val_accuracy"] == pytest.approx(single["accuracy"], abs=1e-9)
