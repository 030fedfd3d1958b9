"""Seed 004, "Training with Callbacks", run as the document writes it.

Only the import line differs from the document (it has none: ``Trainer`` comes from
``trainables``). The document's callback gets 0-based epochs (it prints ``epoch+1``) and
``train_loss`` / ``eval_loss``, so its commented-out TensorBoard lines would work; here
they append to ``logged`` instead (the lines marked ``# (filled in)``).

    python examples/seeds/seed_004_callbacks.py
"""

from trainables import Trainer
import torch  # (filled in)
from torch.utils.data import DataLoader, TensorDataset  # (filled in)

torch.manual_seed(0)  # (filled in)
_x = torch.randn(120, 4)  # (filled in)
_y = _x.sum(dim=1, keepdim=True)  # (filled in)
train_dataloader = DataLoader(TensorDataset(_x[:96], _y[:96]), batch_size=16, shuffle=True)  # (filled in)
eval_dataloader = DataLoader(TensorDataset(_x[96:], _y[96:]), batch_size=16)  # (filled in)
_model = torch.nn.Linear(4, 1)  # (filled in)
trainer = Trainer(_model, torch.optim.SGD(_model.parameters(), lr=0.05), torch.nn.MSELoss())  # (filled in)
logged = []  # (filled in: what the TensorBoard writer would have received)


# ---- the document's code from here ----
def log_metrics_callback(trainer, epoch, metrics):
    """Custom callback to log metrics"""
    print(f"Epoch {epoch+1} metrics: {metrics}")
    
    # You could also log to TensorBoard or other tracking systems
    # writer.add_scalar('Loss/train', metrics['train_loss'], epoch)
    logged.append(('Loss/train', metrics['train_loss'], epoch))  # (filled in)
    # if 'eval_loss' in metrics:
    #     writer.add_scalar('Loss/eval', metrics['eval_loss'], epoch)
    if 'eval_loss' in metrics:  # (filled in)
        logged.append(('Loss/eval', metrics['eval_loss'], epoch))  # (filled in)

# Use the callback during training
trainer.train(
    train_dataloader=train_dataloader,
    eval_dataloader=eval_dataloader,
    num_epochs=10,
    callbacks=[log_metrics_callback]
)
