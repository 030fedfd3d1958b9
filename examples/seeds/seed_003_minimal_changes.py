"""Seed 003, EarlyStopping's "Integration with Existing Code" (the "After" loop), as the document writes it.

Only the import line differs from the document (it has none: the class comes from
``trainables.callbacks``). ``train_one_epoch`` and ``validate`` are the reader's; the lines
marked ``# (filled in)`` supply them with tiny data.

    python examples/seeds/seed_003_minimal_changes.py
"""

import torch  # (filled in)

torch.manual_seed(0)  # (filled in)
_x = torch.randn(96, 8)  # (filled in)
_y = _x[:, :1] + 0.8 * torch.randn(96, 1)  # (filled in)
model = torch.nn.Sequential(torch.nn.Linear(8, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1))  # (filled in)
_optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)  # (filled in)


def train_one_epoch(model):  # (filled in)
    model.train()  # (filled in)
    _optimizer.zero_grad()  # (filled in)
    loss = torch.nn.functional.mse_loss(model(_x[:64]), _y[:64])  # (filled in)
    loss.backward()  # (filled in)
    _optimizer.step()  # (filled in)
    return loss.item()  # (filled in)


def validate(model):  # (filled in)
    model.eval()  # (filled in)
    with torch.no_grad():  # (filled in)
        return torch.nn.functional.mse_loss(model(_x[64:]), _y[64:]).item()  # (filled in)


# ---- the document's code from here ----
from trainables.callbacks import EarlyStopping

# After (with early stopping) - minimal changes
early_stopping = EarlyStopping(patience=10)
early_stopping.set_model(model)

for epoch in range(100):
    train_loss = train_one_epoch(model)
    val_loss = validate(model)
    print(f"Epoch {epoch}: val_loss={val_loss:.4f}")

    if early_stopping.on_epoch_end(epoch, val_loss):  # Added
        break  # Added
