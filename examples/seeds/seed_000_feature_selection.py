"""Seed 000, the FeatureSelectionTrainer: two modules, two optimizers and the built-ins it promises.

The document (an API page cut short before its examples) describes a classifier and a
selector optimised jointly with two optimizers (model lr 0.001, selector lr 0.01), early
stopping, gradient clipping, history and best-model checkpointing; it shows no code, so
this script is ours. The selector (stochastic gates) and the classifier are given apart,
as in the document's diagram; ``FeatureSelectionTrainer(FeatureSelectionModel(...))``
takes them together.

    python examples/seeds/seed_000_feature_selection.py
"""

import torch
from torch.utils.data import DataLoader, TensorDataset

from trainables import FeatureSelectionTrainer, StochasticGates

torch.set_num_threads(1)  # a tiny model: threads cost more than they save
torch.manual_seed(0)
x = torch.randn(600, 12)
y = ((x[:, 0] + x[:, 1]) > 0).long()  # only the first two of 12 features matter
train_loader = DataLoader(TensorDataset(x[:450], y[:450]), batch_size=30, shuffle=True)
val_loader = DataLoader(TensorDataset(x[450:], y[450:]), batch_size=150)

selector = StochasticGates(12)
classifier = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
trainer = FeatureSelectionTrainer(
    classifier, selector,
    sparsity_lambda=0.03,        # λ: the sparsity-accuracy trade-off
    patience=10,                 # built-in early stopping (restores the best weights)
    checkpoint_dir="./fs_checkpoints",  # built-in best-model checkpoint: best.pt
)                                # max_norm=5.0: built-in gradient clipping
history = trainer.fit(train_loader, 80, val_loader)

print("model lr:", trainer.classifier_optimizer.param_groups[0]["lr"],
      "selector lr:", trainer.selector_optimizer.param_groups[0]["lr"])
print("epochs:", len(history), "status:", history.status, "best epoch:", trainer.early_stopping.best_epoch)
print("selected:", trainer.selected_features(), "best checkpoint:", trainer.best_checkpoint)
