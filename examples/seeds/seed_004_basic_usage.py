"""Seed 004, the Trainer's "Basic Usage", run as the document writes it.

Only the import line differs from the document (``qurious.trainer`` -> ``trainables``).
It trains for 5 epochs, writes ``./checkpoints/best_model.pt`` and
``./checkpoints/checkpoint_epoch_{1..5}.pt`` (run it from a scratch folder), and prints
the history: a dict of per-epoch lists.

    python examples/seeds/seed_004_basic_usage.py
"""

from trainables import Trainer
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

# 1. Define your model
model = nn.Sequential(
    nn.Linear(10, 64),
    nn.ReLU(),
    nn.Linear(64, 1)
)

# 2. Prepare your dataset and dataloader
x = torch.randn(1000, 10)
y = torch.randn(1000, 1)
dataset = TensorDataset(x, y)
dataloader = DataLoader(dataset, batch_size=32, shuffle=True)

# 3. Define optimizer and loss function
optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
loss_fn = nn.MSELoss()

# 4. Initialize trainer
trainer = Trainer(
    model=model,
    optimizer=optimizer,
    loss_fn=loss_fn
)

# 5. Train the model
history = trainer.train(
    train_dataloader=dataloader,
    num_epochs=5,
    save_dir="./checkpoints"
)

print(f"Training history: {history}")
