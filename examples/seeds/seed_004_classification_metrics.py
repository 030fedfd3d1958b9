"""Seed 004, "Custom Metrics for Classification", run as the document writes it.

Only the import line differs from the document (it has none: ``Trainer`` comes from
``trainables``). The document's subclass overrides ``eval_step`` and ``evaluate``; the
lines marked ``# (filled in)`` build a classifier and data, construct the subclass the
positional way the constructor's reference allows, and train it with an eval loader, so
that ``eval_accuracy`` lands in the history.

    python examples/seeds/seed_004_classification_metrics.py
"""

from trainables import Trainer
import torch  # (filled in: the document's snippet uses torch without importing it)
from torch.utils.data import DataLoader, TensorDataset  # (filled in)

torch.manual_seed(0)  # (filled in)
_x = torch.randn(200, 6)  # (filled in)
_y = (_x[:, 0] > 0).long() + (_x[:, 1] > 0).long()  # (filled in: 3 classes)
train_dataloader = DataLoader(TensorDataset(_x[:160], _y[:160]), batch_size=32, shuffle=True)  # (filled in)
eval_dataloader = DataLoader(TensorDataset(_x[160:], _y[160:]), batch_size=16)  # (filled in)


# ---- the document's code from here ----
class ClassificationTrainer(Trainer):
    def eval_step(self, batch):
        inputs, targets = self._prepare_batch(batch)
        outputs = self._forward_pass(inputs)
        loss = self._compute_loss(outputs, targets)
        
        # Calculate accuracy
        _, predicted = torch.max(outputs, 1)
        correct = (predicted == targets).sum().item()
        total = targets.size(0)
        accuracy = correct / total
        
        return {
            'loss': loss.item(),
            'accuracy': accuracy
        }
    
    def evaluate(self, dataloader):
        self.model.eval()
        total_loss = 0.0
        total_accuracy = 0.0
        steps = 0
        
        with torch.no_grad():
            for batch in dataloader:
                step_result = self.eval_step(batch)
                total_loss += step_result['loss']
                total_accuracy += step_result['accuracy']
                steps += 1
        
        return {
            'loss': total_loss / steps if steps > 0 else 0,
            'accuracy': total_accuracy / steps if steps > 0 else 0
        }


# ---- (filled in) using it ----
model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))  # (filled in)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)  # (filled in)
trainer = ClassificationTrainer(model, optimizer, torch.nn.CrossEntropyLoss(), None, torch.device("cpu"))  # (filled in)
history = trainer.train(train_dataloader, 8, eval_dataloader)  # (filled in)
print({k: [round(v, 3) for v in values] for k, values in history.items()})  # (filled in)
