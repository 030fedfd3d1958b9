"""Seed 003, GradientClipCallback's "Example Usage", run as the document writes it.

Only the import line differs from the document (``src.training.callbacks`` ->
``trainables.callbacks``). ``model``, ``data``, ``num_epochs`` and ``compute_loss`` are
the reader's; the lines marked ``# (filled in)`` supply them: a regression whose targets
are scaled up so that the gradients' norm is far above 5.

    python examples/seeds/seed_003_gradient_clip.py
"""

import torch  # (filled in)

torch.manual_seed(0)  # (filled in)
model = torch.nn.Linear(10, 1)  # (filled in)
data = (torch.randn(32, 10), 100 * torch.randn(32, 1))  # (filled in: large targets, large gradients)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)  # (filled in)
num_epochs = 5  # (filled in)
norms = []  # (filled in: the test reads the clipped norms)


def compute_loss(model, data):  # (filled in)
    return torch.nn.functional.mse_loss(model(data[0]), data[1])  # (filled in)


# ---- the document's code from here ----
from trainables.callbacks import GradientClipCallback

# Initialize callback
grad_clip = GradientClipCallback(max_norm=5.0)
grad_clip.set_model(model)

# In training loop
for epoch in range(num_epochs):
    optimizer.zero_grad()
    loss = compute_loss(model, data)
    loss.backward()

    # Clip gradients before optimizer step
    grad_clip.on_after_backward()
    norms.append(torch.stack([p.grad.norm() for p in model.parameters()]).norm().item())  # (filled in)

    optimizer.step()

print(grad_clip.statistics())  # (filled in)
