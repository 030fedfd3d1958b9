"""Seed 002, the distributed trainer's snapshots: the MODEL / TRAIN_INFO / GLOBAL_CONFIG layout.

The document shows the snapshot dict its trainer writes (the best training loss, every
``save_interval`` epochs, the last); this script is ours. ``SnapshotCheckpoint`` writes
snapshots in that layout during a fit, ``read_snapshot`` reads one (weights only: no code
runs) and ``load_snapshot`` restores it into a trainer, which then continues after
``EPOCHS_RUN`` epochs.

    python examples/seeds/seed_002_snapshot.py
"""

import torch
from torch.utils.data import DataLoader, TensorDataset

from trainables import SnapshotCheckpoint, Trainer, load_snapshot, read_snapshot

torch.manual_seed(0)
x = torch.randn(128, 5)
y = x.sum(dim=1, keepdim=True)
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
config = {"model": {"in_features": 5, "out_features": 1}, "training": {"max_grad_norm": 10.0}}


def make_trainer():
    torch.manual_seed(1)
    model = torch.nn.Linear(5, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
    return Trainer(model, optimizer, "MSELoss", config, "cpu", scheduler)


trainer = make_trainer()
trainer.fit(loader, 4, callbacks=[SnapshotCheckpoint("./snapshots", every_n_epochs=2)])

snapshot = read_snapshot("./snapshots/best.pt")
print("sections:", list(snapshot), "MODEL:", list(snapshot["MODEL"]), "TRAIN_INFO:", list(snapshot["TRAIN_INFO"]))
print("epochs run:", snapshot["TRAIN_INFO"]["EPOCHS_RUN"], "best loss:", snapshot["TRAIN_INFO"]["BEST_LOSS"])

restored = make_trainer()
load_snapshot(restored, "./snapshots/last.pt")
history = restored.fit(loader, 6)
print("restored at epoch 4, trained epochs", history["epoch"])
