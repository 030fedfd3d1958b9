"""Seed 003, the "Standalone Function" clip_grad_norm, run as the document writes it.

Only the import line differs from the document (``src.utils.training_utils`` ->
``trainables.callbacks``); the lines marked ``# (filled in)`` supply a model, an optimizer
and one backward pass with large gradients.

    python examples/seeds/seed_003_clip_grad_norm.py
"""

import torch  # (filled in)

torch.manual_seed(0)  # (filled in)
model = torch.nn.Linear(10, 1)  # (filled in)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)  # (filled in)
torch.nn.functional.mse_loss(model(torch.randn(32, 10)), 100 * torch.randn(32, 1)).backward()  # (filled in)

# ---- the document's code from here ----
from trainables.callbacks import clip_grad_norm

# After loss.backward()
total_norm = clip_grad_norm(model.parameters(), max_norm=5.0)

# Continue with optimizer.step()
optimizer.step()

print(f"norm before clipping: {total_norm:.1f}")  # (filled in)
