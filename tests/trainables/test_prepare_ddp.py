"""The public DDP helpers for your own model: ``prepare_model`` and ``prepare_data_loader``.

In one process they wrap and shard nothing; under a real two-process gloo group each rank trains on a
disjoint shard of one seeded permutation and ``backward`` averages the gradients.
"""

from __future__ import annotations

import gc
import json
import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, TensorDataset

from trainables import Trainer, prepare_data_loader, prepare_model
from trainables.data import TensorBatches
from trainables.data.batches import tensor_loader
from trainables.devices import resolve_device
from trainables.distributed import DeviceLoader, SeededDistributedSampler

WORLD_SIZE = 2
LR = 0.1


def _numbered(n: int) -> TensorDataset:
    """Row i has features (i, i, i) and label i, so a batch says which rows it holds."""
    ids = torch.arange(n)
    return TensorDataset(ids.float()[:, None].repeat(1, 3), ids)


def _ids(loader) -> list[int]:
    return [int(i) for _, y in loader for i in y]


# ------------------------------------------------------------------------------ one process
def test_in_one_process_the_model_is_moved_not_wrapped():
    model = torch.nn.Linear(3, 2).to(torch.float64)
    assert prepare_model(model, "cpu") is model
    auto = prepare_model(torch.nn.Linear(3, 2))
    assert type(auto) is torch.nn.Linear and {p.device for p in auto.parameters()} == {resolve_device()}
    moved = prepare_model(torch.nn.Linear(3, 2), "meta")  # a device this CPU machine has: the parameters go there
    assert {p.device.type for p in moved.parameters()} == {"meta"}


def test_in_one_process_a_loader_comes_back_as_it_is():
    plain = DataLoader(_numbered(10), batch_size=3)
    assert prepare_data_loader(plain, device="cpu") is plain
    assert _ids(prepare_data_loader(plain, device="cpu")) == list(range(10))
    sliced = tensor_loader(*_numbered(10).tensors, 4, shuffle=True, seed=2)
    assert prepare_data_loader(sliced, device="cpu") is sliced


def test_in_one_process_a_dataset_gets_a_seeded_loader():
    ordered = prepare_data_loader(_numbered(10), batch_size=4, shuffle=False, device="cpu")
    assert isinstance(ordered, DataLoader)
    assert [y.tolist() for _, y in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = prepare_data_loader(_numbered(10), batch_size=4, seed=3, device="cpu")
    reference = DataLoader(_numbered(10), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3))
    first, second = _ids(shuffled), _ids(shuffled)
    assert [first, second] == [_ids(reference), _ids(reference)]
    assert sorted(first) == list(range(10)) and first != second  # a new order every epoch


def test_batches_arrive_on_the_device_in_the_loaders_own_order():
    # "meta" stands in for a GPU on a CPU machine: the loader's order and batch size are kept, the tensors move.
    plain = DataLoader(_numbered(7), batch_size=3)
    moved = prepare_data_loader(plain, device="meta")
    assert isinstance(moved, DeviceLoader) and len(moved) == 3
    assert [(x.device.type, y.device.type, len(y)) for x, y in moved] == [("meta", "meta", 3)] * 2 + [("meta", "meta", 1)]
    sliced = prepare_data_loader(tensor_loader(*_numbered(7).tensors, 3, shuffle=False), device="meta")
    assert isinstance(sliced, TensorBatches) and {x.device.type for x, _ in sliced} == {"meta"}
    from_dataset = prepare_data_loader(_numbered(5), batch_size=2, device="meta")
    assert {y.device.type for _, y in from_dataset} == {"meta"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_the_model_and_the_batches_go_to_the_current_device():
    device = torch.device("cuda", torch.cuda.current_device())
    model = prepare_model(torch.nn.Linear(3, 2))
    assert {p.device for p in model.parameters()} == {device}
    loader = prepare_data_loader(DataLoader(_numbered(7), batch_size=3))
    assert [(x.device, y.device) for x, y in loader] == [(device, device)] * 3
    assert _ids(loader) == list(range(7))


def test_the_sampler_reshuffles_every_pass_unless_told_the_epoch():
    sampler = SeededDistributedSampler(range(10), 2, 1, seed=4)

    def reference(epoch: int) -> list[int]:
        plain = DistributedSampler(range(10), num_replicas=2, rank=1, shuffle=True, seed=4)
        plain.set_epoch(epoch)
        return list(plain)

    assert [list(sampler) for _ in range(3)] == [reference(0), reference(1), reference(2)]
    sampler.set_epoch(5)  # what Trainer.fit calls before each epoch: it decides the next pass
    assert list(sampler) == reference(5)
    assert list(sampler) == reference(6)
    sampler.set_epoch(2)
    sampler.set_epoch(3)  # the last word counts
    assert list(sampler) == reference(3)


def test_the_trainer_tells_the_sampler_each_epoch():
    sampler = SeededDistributedSampler(range(8), 2, 0, seed=1)
    seen = []

    class Spy(SeededDistributedSampler):
        def __iter__(self):
            order = list(super().__iter__())
            seen.append((self.epoch, order))
            return iter(order)

    sampler.__class__ = Spy
    loader = DataLoader(_numbered(8), batch_size=2, sampler=sampler)
    Trainer(torch.nn.Linear(3, 8), "sgd", "cross_entropy", device="cpu").fit(loader, epochs=3)
    assert [epoch for epoch, _ in seen] == [1, 2, 3]


@pytest.mark.parametrize(("call", "message"), [
    (lambda: prepare_data_loader(_numbered(4)), r"a Dataset needs batch_size, a positive integer \(got None\)"),
    (lambda: prepare_data_loader(_numbered(4), batch_size=0), r"positive integer \(got 0\)"),
    (lambda: prepare_data_loader(DataLoader(_numbered(4), batch_size=2), batch_size=3),
     r"batch_size=3 is for a Dataset; a DataLoader keeps its own \(2\)"),
    (lambda: prepare_data_loader(_numbered(4), batch_size=2, evaluation=True, shuffle=True),
     r"evaluation=True shards rows in a fixed order; drop shuffle=True"),
])
def test_bad_arguments_say_what_to_do(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_prepare_model_refuses_what_is_not_a_module():
    with pytest.raises(TypeError, match=r"prepare_model: expected a torch.nn.Module, got function"):
        prepare_model(lambda x: x)


# ------------------------------------------------------------------------- two ranks (gloo)
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Stream(IterableDataset):
    def __iter__(self):
        return iter(range(4))


def _rank(rank: int, port: int, out: str) -> None:
    """One rank: shard four kinds of input, take one DDP step; write what it saw to ``out/rank{rank}.json``."""
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE, timeout=timedelta(seconds=60))
    try:
        (Path(out) / f"rank{rank}.json").write_text(json.dumps(_what_rank_sees(rank)))
    finally:
        gc.collect()  # free the DDP model before leaving the group (see test_ddp._destroy_group)
        dist.destroy_process_group()


def _what_rank_sees(rank: int) -> dict:
    seen = _shards()
    torch.manual_seed(100 + rank)  # different initial weights on each rank: DDP starts them from rank 0's
    model = prepare_model(torch.nn.Linear(3, 1), "cpu")
    seen["wrapped"] = type(model).__name__
    seen["start"] = [p.detach().flatten().tolist() for p in model.parameters()]
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(rank))  # each rank its own batch
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    model(x).pow(2).mean().backward()
    optimizer.step()
    seen["batch"] = x.tolist()
    seen["after"] = [p.detach().flatten().tolist() for p in model.parameters()]
    # The same program again, from new loaders, the global RNG elsewhere (and different on each rank).
    torch.manual_seed(7 + rank)
    seen["again"] = _shards()
    return seen


def _shards() -> dict:
    seen: dict = {}
    dataset = prepare_data_loader(_numbered(20), batch_size=4, seed=5, device="cpu")
    seen["dataset"] = [_ids(dataset), _ids(dataset)]  # two passes, nobody calls set_epoch
    plain = prepare_data_loader(DataLoader(_numbered(20), batch_size=3, shuffle=True), seed=5, device="cpu")
    seen["loader_batch_sizes"] = [len(y) for _, y in plain]
    seen["loader"] = []
    for epoch in (1, 2):  # as Trainer.fit does
        plain.sampler.set_epoch(epoch)
        seen["loader"].append(_ids(plain))
    sliced = prepare_data_loader(tensor_loader(*_numbered(20).tensors, 4, shuffle=True, seed=9), seed=5, device="cpu")
    seen["sliced_type"] = type(sliced).__name__
    seen["sliced"] = [_ids(sliced), _ids(sliced)]
    seen["evaluation"] = _ids(prepare_data_loader(DataLoader(_numbered(21), batch_size=4), evaluation=True,
                                                  device="cpu"))
    try:
        prepare_data_loader(DataLoader(_Stream(), batch_size=2), device="cpu")
    except ValueError as exc:
        seen["stream_error"] = str(exc)
    return seen


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    """One two-rank run (a spawn costs seconds): [rank] -> what the rank saw."""
    out = tmp_path_factory.mktemp("prepare")
    mp.spawn(_rank, args=(_free_port(), str(out)), nprocs=WORLD_SIZE, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]


def _assert_disjoint_halves(zero: list[int], one: list[int], n: int) -> None:
    assert len(zero) == len(one) == n // 2
    assert not set(zero) & set(one)
    assert sorted(zero + one) == list(range(n))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dataset", "loader", "sliced"])
def test_each_rank_takes_a_disjoint_half_reshuffled_every_epoch(two_ranks, kind):
    zero, one = two_ranks
    for epoch in range(2):
        _assert_disjoint_halves(zero[kind][epoch], one[kind][epoch], 20)
    assert zero[kind][0] != zero[kind][1]  # a new shard each epoch


@pytest.mark.slow
def test_the_shards_are_one_seeded_permutation_the_same_on_every_run(two_ranks):
    for rank, seen in enumerate(two_ranks):
        for kind in ("dataset", "loader", "sliced", "evaluation"):  # the global RNG plays no part
            assert seen[kind] == seen["again"][kind], (rank, kind)
        # DistributedSampler's permutation for seed 5 (so in any process): epochs 0 and 1 without
        # set_epoch, 1 and 2 with it.
        for kind, epochs in (("dataset", (0, 1)), ("loader", (1, 2)), ("sliced", (0, 1))):
            for shard, epoch in zip(seen[kind], epochs):
                reference = DistributedSampler(range(20), num_replicas=WORLD_SIZE, rank=rank, shuffle=True, seed=5)
                reference.set_epoch(epoch)
                assert shard == list(reference), (rank, kind, epoch)


@pytest.mark.slow
def test_a_loader_keeps_its_batch_size_and_slices_stay_slices(two_ranks):
    for seen in two_ranks:
        assert seen["loader_batch_sizes"] == [3, 3, 3, 1]  # 10 rows of the 20, batches of the loader's 3
        assert seen["sliced_type"] == "TensorBatches"


@pytest.mark.slow
def test_evaluation_shards_hold_every_row_once(two_ranks):
    zero, one = (seen["evaluation"] for seen in two_ranks)
    assert zero == list(range(0, 21, 2)) and one == list(range(1, 21, 2))


@pytest.mark.slow
def test_an_iterable_dataset_is_refused_under_ddp(two_ranks):
    assert "cannot shard _Stream, an IterableDataset, by row under DDP" in two_ranks[0]["stream_error"]


@pytest.mark.slow
def test_the_model_is_wrapped_and_its_gradients_averaged(two_ranks):
    zero, one = two_ranks
    assert zero["wrapped"] == one["wrapped"] == "DistributedDataParallel"
    assert zero["start"] == one["start"]  # rank 0's weights, copied to rank 1 by the wrap
    assert zero["after"] == one["after"]
    # The step one process takes with the mean of the two ranks' gradients.
    model = torch.nn.Linear(3, 1)
    with torch.no_grad():
        for p, values in zip(model.parameters(), zero["start"]):
            p.copy_(torch.tensor(values).view_as(p))
    grads = []
    for seen in (zero, one):
        model.zero_grad()
        model(torch.tensor(seen["batch"])).pow(2).mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for p, after, g0, g1 in zip(model.parameters(), zero["after"], *grads):
        expected = p.detach() - LR * (g0 + g1) / 2
        torch.testing.assert_close(torch.tensor(after).view_as(p), expected)
    # Not what either rank alone would take: the averaging is visible.
    alone = [p.detach() - LR * g for p, g in zip(model.parameters(), grads[0])]
    assert not all(torch.allclose(torch.tensor(a).view_as(b), b) for a, b in zip(zero["after"], alone))
