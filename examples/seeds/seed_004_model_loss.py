"""Seed 004, "Fine-tuning Hugging Face Models": ``loss_fn=None`` and a model that computes its own loss.

The document fine-tunes GPT-2, which needs ``transformers`` and a download; this script
keeps the document's trainer code (``Trainer(model=..., optimizer=AdamW(...),
loss_fn=None)`` and its ``train`` call, only the import line changed) and stands a tiny
model in for GPT-2 (lines marked ``# (filled in)``): like a Hugging Face model, it takes
``input_ids`` and ``labels`` and returns an output with ``.loss``.

    python examples/seeds/seed_004_model_loss.py
"""

from types import SimpleNamespace  # (filled in)

import torch  # (filled in)
from torch.utils.data import DataLoader  # (filled in)

from trainables import Trainer


class TinyCausalLM(torch.nn.Module):  # (filled in: stands in for AutoModelForCausalLM)
    def __init__(self, vocab=32, width=16):  # (filled in)
        super().__init__()  # (filled in)
        self.embed = torch.nn.Embedding(vocab, width)  # (filled in)
        self.head = torch.nn.Linear(width, vocab)  # (filled in)

    def forward(self, input_ids, labels=None):  # (filled in)
        logits = self.head(self.embed(input_ids))  # (filled in)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),  # (filled in)
                                                 labels[:, 1:].reshape(-1))  # (filled in)
        return SimpleNamespace(loss=loss, logits=logits)  # (filled in)


torch.manual_seed(0)  # (filled in)
_ids = torch.arange(24).repeat(40, 1) % 32  # (filled in: a predictable sequence)
_rows = [{"input_ids": row, "labels": row} for row in _ids]  # (filled in)
train_dataloader = DataLoader(_rows[:32], batch_size=8)  # (filled in)
eval_dataloader = DataLoader(_rows[32:], batch_size=8)  # (filled in)
model = TinyCausalLM()  # (filled in)

# ---- the document's code from here (less the transformers lines: loading GPT-2, its tokenizer, the data) ----
from torch.optim import AdamW

# Configure optimizer with weight decay
optimizer = AdamW(
    model.parameters(),
    lr=5e-5,
    weight_decay=0.01
)

# Initialize trainer
trainer = Trainer(
    model=model,
    optimizer=optimizer,
    loss_fn=None,  # Not needed as HF models calculate loss internally
)

# Train
history = trainer.train(
    train_dataloader=train_dataloader,
    eval_dataloader=eval_dataloader,
    num_epochs=3,
    save_dir="./checkpoints"
)
print(history["train_loss"], history["eval_loss"])  # (filled in)
