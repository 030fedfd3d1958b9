"""Seed 004, "Configuration Options": the config keys the Trainer reads, and its positional constructor.

The document lists the keys (``training.weight_decay``, ``training.max_grad_norm``,
``training.scheduler_step_per_batch``) and the constructor ``Trainer(model, optimizer,
loss_fn, config, device, scheduler)`` but shows no code for them; this script is ours.
The config is a plain object (``SimpleNamespace``), as a custom ``Config`` class would
be. The targets are scaled so that unclipped gradient norms are in the hundreds.

    python examples/seeds/seed_004_config.py
"""

from types import SimpleNamespace

import torch
from torch.utils.data import DataLoader, TensorDataset

from trainables import Callback, Trainer

torch.manual_seed(0)
x = torch.randn(256, 10)
y = 300 * torch.randn(256, 1)
dataloader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)

model = torch.nn.Linear(10, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
config = SimpleNamespace(
    model=SimpleNamespace(in_features=10),  # stored in checkpoints, not read by the trainer
    training=SimpleNamespace(weight_decay=0.01, max_grad_norm=1.0, scheduler_step_per_batch=True),
)


class ClippedNorms(Callback):
    """Records the gradients' norm after clipping (runs after GradientClipping, order 10)."""

    order = 20

    def __init__(self):
        self.norms = []

    def on_after_backward(self, trainer):
        self.norms.append(torch.stack([p.grad.norm() for p in trainer.parameters()]).norm().item())


clipped = ClippedNorms()
trainer = Trainer(model, optimizer, torch.nn.MSELoss(), config, torch.device("cpu"), scheduler)
history = trainer.train(dataloader, num_epochs=2, callbacks=[clipped])

print(f"gradient norm before clipping, largest: {max(history['grad_norm_max']):.0f}")
print(f"gradient norm after clipping, largest: {max(clipped.norms):.3f}")
print(f"scheduler steps: {scheduler.last_epoch} (batches: {2 * len(dataloader)})")
print(f"weight decay: {optimizer.param_groups[0]['weight_decay']}")
