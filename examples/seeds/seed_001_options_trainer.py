"""Seed 001, the configurable base trainer: every constructor option, by the document's names.

The document shows the constructor's source (each option and its default) rather than a
call; this script calls it with the options a user of that trainer would pass. Only
the import differs: the seed's ``Trainer`` is ``trainables.OptionsTrainer`` (an ordinary
``Trainer`` built from the options). ``train()`` runs to ``num_epochs`` epochs in all,
writes ``ck_epoch_{N}.pt`` every epoch (``save_every=-1``), ``ck_best.pt`` (saving turns
``save_best`` on, as in the document) and ``ck_history.json``, and stops at
``stop_when_acc``.

    python examples/seeds/seed_001_options_trainer.py
"""

import torch
from torch.utils.data import TensorDataset

from trainables import OptionsTrainer as Trainer

torch.manual_seed(0)
x = torch.randn(300, 6)
y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))

trainer = Trainer(
    model,
    num_epochs=20,
    learning_rate=0.2,
    optim_function="SGD",               # momentum: the document's default 0.5
    loss_function="CrossEntropyLoss",
    checkpoint_dir="./lernomatic_checkpoints",
    checkpoint_name="ck",
    save_every=-1,                      # every epoch
    device_id=-1,                       # the CPU
    batch_size=32,
    train_dataset=TensorDataset(x[:240], y[:240]),
    val_dataset=TensorDataset(x[240:], y[240:]),
    num_workers=0,
    print_every=5,
    early_stop={"patience": 5},
    stop_when_acc=0.9,
)
history = trainer.train()

print("momentum:", trainer.optimizer.param_groups[0]["momentum"], "weight decay:",
      trainer.optimizer.param_groups[0]["weight_decay"])
print("stopped:", history.status, "after", trainer.cur_epoch, "epochs; val_accuracy", history["val_accuracy"][-1])
