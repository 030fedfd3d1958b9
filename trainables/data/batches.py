"""Batches of a split's tensors by slicing, not per-sample indexing.

``DataLoader(TensorDataset)`` fetches every sample on its own and stacks them again
(collation): on a small model that is most of the data handling of an epoch. A
:class:`TensorBatches` gathers each epoch's rows once, in its seeded order (one
``index_select`` per tensor), and yields slices of that: the loop one writes by hand.

It is a ``DataLoader`` all the same (``len()``, ``.dataset``, ``.sampler.set_epoch``,
``.generator``, ``isinstance``), so code written for the old loader, the trainer's
checkpoints among it, keeps working. A user's own ``Dataset`` keeps the plain ``DataLoader``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Sampler, SequentialSampler, TensorDataset

from trainables.data.checks import DataError, is_int
from trainables.devices import fits_on_device, resolve_device

__all__ = ["EpochShuffle", "TensorBatches", "check_loader_args", "tensor_loader"]


class EpochShuffle(Sampler[int]):
    """The orders in which ``DataLoader(shuffle=True, generator=torch.Generator().manual_seed(seed))``
    visits ``range(n)``, pass after pass.

    Each pass of such a loader draws from its generator an int64 (its workers' base seed),
    the permutation, and, when its ``RandomSampler`` runs out, one more (unused) permutation.
    Drawing exactly the same keeps a seed's batches what they were with the DataLoader, and
    the generator's state what the trainer's checkpoints have always saved (``loader_rng``).

    Epochs count from 1, as :meth:`Trainer.fit <trainables.trainer.Trainer.fit>` numbers them
    (it calls ``set_epoch`` before each). ``set_epoch(e)`` makes the next pass the e-th one
    after seeding, replaying the earlier draws when the generator is elsewhere (a resumed
    run): seed and epoch alone fix the order. Without ``set_epoch`` each pass continues from
    the last, as a DataLoader's do.
    """

    def __init__(self, n: int, seed: int, generator: torch.Generator | None = None) -> None:
        self.n, self.seed = n, seed
        self.generator = generator if generator is not None else torch.Generator()
        self.generator.manual_seed(seed)
        self._passes = 0  # passes drawn since the generator was seeded
        self._state_after = self.generator.get_state()  # where the last pass (or the seeding) left it
        self._next_epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (from 1) of this seed.

        Raises:
            DataError: ``epoch`` is not an integer >= 1.
        """
        if not is_int(epoch) or epoch < 1:
            raise DataError(f"set_epoch: epoch={epoch!r} must be an integer >= 1 (epochs count from 1, "
                            "as Trainer.fit numbers them)")
        self._next_epoch = int(epoch)

    def next_order(self) -> torch.Tensor:
        """The row order of the next pass (int64, on the CPU)."""
        epoch, self._next_epoch = self._next_epoch, None
        if epoch is not None and not (epoch == self._passes + 1 and self._where_left()):
            self.generator.manual_seed(self.seed)
            self._passes = 0
            while self._passes < epoch - 1:
                self._draw()
        return self._draw()

    def _where_left(self) -> bool:
        """Whether the generator is still where the last pass left it (nobody restored a state since)."""
        return torch.equal(self.generator.get_state(), self._state_after)

    def _draw(self) -> torch.Tensor:
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)  # the DataLoader's base seed
        order = torch.randperm(self.n, generator=self.generator)
        torch.randperm(self.n, generator=self.generator)  # RandomSampler's remainder draw, `[:n % n]`
        self._passes += 1
        self._state_after = self.generator.get_state()
        return order

    def __iter__(self) -> Iterator[int]:
        return iter(self.next_order().tolist())

    def __len__(self) -> int:
        return self.n


class TensorBatches(DataLoader):
    """``[features, labels]`` batches sliced from tensors placed on their device once.

    On the CPU (or with ``device=None``) the tensors stay where they are (for a
    :class:`~trainables.data.DataSplits`, memory shared with its arrays). On a GPU the
    whole split moves there when it fits (:func:`~trainables.devices.fits_on_device`, room
    for it and one epoch's shuffled copy); otherwise it is pinned in host memory and each
    batch is copied without blocking. Other accelerators take the split whole.

    A shuffled epoch holds one permuted copy of the split, sliced into batches; an ordered
    part's batches are views of the split itself, so they must not be modified in place.

    Args:
        x: Features, one row per sample.
        y: Labels, as many rows.
        batch_size: Rows per batch.
        sampler: The row order: :class:`EpochShuffle`, ``SequentialSampler`` (storage order,
            plain slices) or any sampler of indices (e.g. ``DistributedSampler``), whose
            indices are gathered once per pass.
        drop_last: Drop a last, smaller batch.
        generator: The generator the sampler draws from (the trainer checkpoints its state).
        device: Where batches are yielded; None keeps the tensors where they are.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, *, sampler: Sampler[int],
                 drop_last: bool = False, generator: torch.Generator | None = None,
                 device: str | torch.device | None = None) -> None:
        target = x.device if device is None else resolve_device(device)
        resident = target.type != "cuda" or fits_on_device(target, 2 * (x.nbytes + y.nbytes))
        if resident:
            x, y = x.to(target), y.to(target)
        else:  # host memory the GPU can copy from while the previous batch computes
            x, y = x.pin_memory(), y.pin_memory()
        super().__init__(TensorDataset(x, y), batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                         generator=generator)
        self.device = target
        self.resident = resident

    def __iter__(self) -> Iterator[list[torch.Tensor]]:  # type: ignore[override]
        x, y = self.dataset.tensors
        order = _order_of(self.sampler)
        if order is not None and self.resident:
            order = order.to(x.device)
            x, y, order = x.index_select(0, order), y.index_select(0, order), None
        rows = len(x) if order is None else len(order)
        stop = rows - rows % self.batch_size if self.drop_last else rows
        for start in range(0, stop, self.batch_size):
            if order is None:
                batch = [x[start:start + self.batch_size], y[start:start + self.batch_size]]
            else:
                picked = order[start:start + self.batch_size]
                batch = [x.index_select(0, picked).pin_memory(), y.index_select(0, picked).pin_memory()]
            if not self.resident:
                batch = [t.to(self.device, non_blocking=True) for t in batch]
            yield batch


def _order_of(sampler: Sampler[int]) -> torch.Tensor | None:
    """This pass's row indices; None for storage order (slices, no gather)."""
    if isinstance(sampler, EpochShuffle):
        return sampler.next_order()
    if isinstance(sampler, SequentialSampler):
        return None
    return torch.as_tensor(list(sampler), dtype=torch.int64)


def tensor_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool, seed: int = 0,
                  drop_last: bool = False, sampler: Sampler[int] | None = None,
                  device: str | torch.device | None = None) -> TensorBatches:
    """A :class:`TensorBatches` over ``(x, y)``: shuffled by ``seed`` per epoch, in storage order, or ``sampler``'s.

    Raises:
        DataError: a bad batch size, or ``shuffle=True`` with a sampler.
    """
    check_loader_args(batch_size, shuffle, sampler)
    generator = torch.Generator().manual_seed(seed)
    if sampler is None:
        sampler = EpochShuffle(len(x), seed, generator) if shuffle else SequentialSampler(range(len(x)))
    return TensorBatches(x, y, batch_size, sampler=sampler, drop_last=drop_last, generator=generator,
                         device=device)


def check_loader_args(batch_size: int, shuffle: bool | None, sampler: Sampler[int] | None) -> None:
    if not is_int(batch_size) or batch_size < 1:
        raise DataError(f"loader: batch_size={batch_size!r} must be a positive integer")
    if sampler is not None and shuffle:
        raise DataError("loader: shuffle=True cannot be combined with a sampler; the sampler sets the "
                        "order (call sampler.set_epoch(epoch) to reshuffle a DistributedSampler)")
