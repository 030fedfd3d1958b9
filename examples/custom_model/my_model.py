"""Your own model and training function, searched by `python -m search`.

A training function is any ``train(config, report)``: ``config`` holds the sampled
and fixed values; call ``report(metrics)`` once per epoch (with ``epoch`` in it) and,
to make the trial resumable, ``report(metrics, checkpoint_dir)``. Declaring ``data``
and ``resume_from`` parameters is optional: ``search`` passes the data set it loaded
once for all trials, and the checkpoint folder to continue from after a retry.

This one uses the ``trainables`` Trainer for the loop; a plain PyTorch loop works too.

    python -m search validate examples/custom_model/space.yaml
    python -m search run examples/custom_model/space.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from trainables import EarlyStopping, Trainer
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
    trainer = Trainer(
        model, config["optimizer"], "cross_entropy", lr=config["lr"], weight_decay=config.get("weight_decay", 0.0),
        callbacks=[EarlyStopping("val_loss", patience=config["patience"]), ReportCallback(report)],
        config=config,
    )
    if resume_from is not None:
        trainer.load_checkpoint(Path(resume_from) / "checkpoint.pt")
    batch = config["batch_size"]
    trainer.fit(data.loader("train", batch, seed=config.get("seed", 0)), config["epochs"], data.loader("val", batch))


# Optional declarations: with them, `validate` catches a misspelt metric or config key.
train.metrics = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "stop_reason")  # type: ignore[attr-defined]
train.config_keys = ("lr", "optimizer", "weight_decay", "width", "depth", "dropout", "patience", "epochs",  # type: ignore[attr-defined]
                     "batch_size", "seed")
