"""Seed 003, EarlyStopping's "Example Usage", run as the document writes it.

Only the import line differs from the document (``src.training.callbacks`` ->
``trainables.callbacks``). The document leaves the model, the data and the loop's inner
lines to the reader; the lines marked ``# (filled in)`` supply them, with a small noisy
data set that a wide network overfits within a few dozen epochs, so the stop happens.

    python examples/seeds/seed_003_early_stopping.py
"""

import torch  # (filled in: the document uses torch.no_grad() without importing torch)
from torch.utils.data import DataLoader, TensorDataset  # (filled in)

torch.manual_seed(0)  # (filled in)
_x = torch.randn(96, 8)  # (filled in: 64 training and 32 validation samples)
_y = _x[:, :1] + 0.8 * torch.randn(96, 1)  # (filled in: a noisy target, easy to overfit)
train_loader = DataLoader(TensorDataset(_x[:64], _y[:64]), batch_size=16, shuffle=True)  # (filled in)
val_loader = DataLoader(TensorDataset(_x[64:], _y[64:]), batch_size=16)  # (filled in)


class YourModel(torch.nn.Sequential):  # (filled in)
    def __init__(self):  # (filled in)
        super().__init__(torch.nn.Linear(8, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1))  # (filled in)


# ---- the document's code from here ----
from trainables.callbacks import EarlyStopping
import torch.nn as nn
import torch.optim as optim

# Setup model and optimizer
model = YourModel()
optimizer = optim.Adam(model.parameters())
criterion = nn.MSELoss()

# Initialize early stopping
early_stopping = EarlyStopping(
    patience=10,
    min_delta=1e-4,
    restore_best_weights=True
)
early_stopping.set_model(model)

# Training loop
for epoch in range(100):
    # Training phase
    model.train()
    train_loss = 0.0
    for batch in train_loader:
        # ... training code ...
        inputs, targets = batch  # (filled in)
        optimizer.zero_grad()  # (filled in)
        loss = criterion(model(inputs), targets)  # (filled in)
        loss.backward()  # (filled in)
        optimizer.step()  # (filled in)
        train_loss += loss.item()

    # Validation phase
    model.eval()
    val_loss = 0.0
    with torch.no_grad():
        for batch in val_loader:
            # ... validation code ...
            inputs, targets = batch  # (filled in)
            loss = criterion(model(inputs), targets)  # (filled in)
            val_loss += loss.item()

    # Check early stopping
    if early_stopping.on_epoch_end(epoch, val_loss):
        print(f"Early stopping triggered at epoch {epoch}")
        break

# Get best metrics
best_metrics = early_stopping.get_best_metrics()
print(f"Best validation loss: {best_metrics['best_loss']:.4f}")
print(f"Best epoch: {best_metrics['best_epoch']}")
