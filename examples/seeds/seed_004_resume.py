"""Seed 004's ``load_checkpoint`` and ``_save_checkpoint``: train, save, load, train on.

The document describes ``load_checkpoint(path, load_optimizer, load_scheduler)`` and the
protected ``_save_checkpoint(path, epoch, metric_value)`` without an example; this
script is ours. ``num_epochs`` counts the epochs to run now: a trainer loaded from the
checkpoint written after 3 epochs trains epochs 3 and 4 (0-based) when asked for 2.

    python examples/seeds/seed_004_resume.py
"""

import torch
from torch.utils.data import DataLoader, TensorDataset

from trainables import Trainer

torch.manual_seed(0)
x = torch.randn(128, 4)
y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
train_dataloader = DataLoader(TensorDataset(x[:96], y[:96]), batch_size=16, shuffle=True)
eval_dataloader = DataLoader(TensorDataset(x[96:], y[96:]), batch_size=16)


class LoggingTrainer(Trainer):
    """Overrides the protected hook every checkpoint of ``train`` goes through."""

    saved = []

    def _save_checkpoint(self, path, epoch, metric_value=None):
        super()._save_checkpoint(path, epoch, metric_value)
        self.saved.append((path.rsplit("/", 1)[-1], epoch, metric_value))


def make_trainer():
    torch.manual_seed(1)
    model = torch.nn.Linear(4, 1)
    return LoggingTrainer(model, torch.optim.SGD(model.parameters(), lr=0.02), torch.nn.MSELoss())


first = make_trainer()
first_history = first.train(train_dataloader, 3, eval_dataloader, save_dir="./checkpoints", save_freq=1,
                            best_model_metric="eval_loss", early_stopping_patience=5)

second = make_trainer()
data = second.load_checkpoint("./checkpoints/checkpoint_epoch_3.pt")
second_history = second.train(train_dataloader, 2, eval_dataloader)

print("first run, epochs:", first_history["epoch"], "eval_loss:", [round(v, 4) for v in first_history["eval_loss"]])
print("loaded after", data["epoch"], "epochs; second run, epochs:", second_history["epoch"])
print("checkpoints written:", LoggingTrainer.saved)
