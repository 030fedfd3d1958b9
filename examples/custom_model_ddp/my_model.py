"""`examples/custom_model` on two DDP workers: the same model and training function, four lines apart.

Against ``examples/custom_model/my_model.py`` (``diff`` the two files), the code differs in four lines,
besides this docstring:

1. (changed) the import adds ``prepare_data_loader, prepare_model`` (from ``trainables``; no Ray here);
2. (added) ``model = prepare_model(model)``: the model on this rank's device, wrapped in
   ``DistributedDataParallel`` when there are several ranks, so ``backward`` averages the gradients;
3. (added) ``train_rows = prepare_data_loader(data.loader("train", batch), seed=...)``: each rank trains
   on its own half of the rows, one seeded permutation shared by the ranks and reshuffled every epoch;
4. (changed) ``trainer.fit(train_rows, ..., prepare_data_loader(data.loader("val", batch), evaluation=True))``:
   each rank scores its own validation rows, every row once, and the Trainer sums the metrics over the ranks.

The spec asks for the workers (``resources: {num_workers: 2}``); ``search`` starts them with Ray Train
and the process group is up before ``train`` is called. The same file runs in one process unchanged
(the helpers then wrap and shard nothing), and under ``torchrun`` once a process group is initialised.
Rank 0's reports are the trial's; the Trainer all-reduces the metrics first, so they are global.

    python -m search validate examples/custom_model_ddp/space.yaml
    python -m search run examples/custom_model_ddp/space.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from trainables import EarlyStopping, Trainer, prepare_data_loader, prepare_model
from trainables.api import ReportFn
from trainables.data import DataSplits
from trainables.tasks import ReportCallback, seed_everything


class ResidualMLP(nn.Module):
    """A small residual MLP classifier: the model being tuned."""

    def __init__(self, num_features: int, num_classes: int, width: int, depth: int, dropout: float) -> None:
        super().__init__()
        self.stem = nn.Linear(num_features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Dropout(dropout))
            for _ in range(depth)
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):  # type: ignore[no-untyped-def]
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


def train(config: dict[str, Any], report: ReportFn, data: DataSplits, resume_from: str | None = None) -> None:
    seed_everything(config.get("seed", 0))
    model = ResidualMLP(data.num_features, data.num_classes, config["width"], config["depth"], config["dropout"])
    model = prepare_model(model)  # on this rank's device; with several ranks, wrapped in DistributedDataParallel
    trainer = Trainer(
        model, config["optimizer"], "cross_entropy", lr=config["lr"], weight_decay=config.get("weight_decay", 0.0),
        callbacks=[EarlyStopping("val_loss", patience=config["patience"]), ReportCallback(report)],
        config=config,
    )
    if resume_from is not None:
        trainer.load_checkpoint(Path(resume_from) / "checkpoint.pt")
    batch = config["batch_size"]
    train_rows = prepare_data_loader(data.loader("train", batch), seed=config.get("seed", 0))  # this rank's shard
    trainer.fit(train_rows, config["epochs"], prepare_data_loader(data.loader("val", batch), evaluation=True))


# Optional declarations: with them, `validate` catches a misspelt metric or config key.
train.metrics = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "stop_reason")  # type: ignore[attr-defined]
train.config_keys = ("lr", "optimizer", "weight_decay", "width", "depth", "dropout", "patience", "epochs",  # type: ignore[attr-defined]
                     "batch_size", "seed")
