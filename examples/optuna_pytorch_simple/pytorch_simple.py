"""Optuna's ``pytorch/pytorch_simple.py`` (optuna-examples), ported to ``python -m search``.

What changed, line by line, and nothing else:

* ``objective(trial)`` became ``objective(config, report)``; each ``trial.suggest_*(name, ...)`` became
  ``config[name]`` (the distributions moved to ``space.yaml``, the per-layer ones with
  ``when: {n_layers: {ge: ...}}``);
* ``trial.report(accuracy, epoch)`` became ``report({"accuracy": accuracy, "epoch": epoch})`` (the epoch
  counts from 0, as Optuna's step does: search notices and numbers it 1, 2, ...), and the pruning lines
  went (ASHA stops a trial through ``report``);
* the data: scikit-learn's ``load_digits`` (8x8 images, bundled, no download) instead of FashionMNIST,
  so ``28 * 28`` became ``8 * 8``; ``EPOCHS`` comes from the spec's ``fixed.epochs``.

    python -m search validate examples/optuna_pytorch_simple/space.yaml
    python -m search run examples/optuna_pytorch_simple/space.yaml
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


DEVICE = torch.device("cpu")
BATCHSIZE = 128
CLASSES = 10
N_TRAIN_EXAMPLES = BATCHSIZE * 30
N_VALID_EXAMPLES = BATCHSIZE * 10


def define_model(config):
    # We optimize the number of layers, hidden units and dropout ratio in each layer.
    n_layers = config["n_layers"]
    layers = []

    in_features = 8 * 8
    for i in range(n_layers):
        out_features = config["n_units_l{}".format(i)]
        layers.append(nn.Linear(in_features, out_features))
        layers.append(nn.ReLU())
        p = config["dropout_l{}".format(i)]
        layers.append(nn.Dropout(p))

        in_features = out_features
    layers.append(nn.Linear(in_features, CLASSES))
    layers.append(nn.LogSoftmax(dim=1))

    return nn.Sequential(*layers)


def get_digits():
    # Load scikit-learn's digits: 1797 images of 8x8 pixels, 16 grey levels (bundled, no download).
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    targets = torch.tensor(digits.target)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(targets), generator=generator)
    train, valid = order[:1400], order[1400:]
    train_loader = DataLoader(TensorDataset(images[train], targets[train]), batch_size=BATCHSIZE, shuffle=True)
    valid_loader = DataLoader(TensorDataset(images[valid], targets[valid]), batch_size=BATCHSIZE, shuffle=True)

    return train_loader, valid_loader


def objective(config, report):
    # Generate the model.
    model = define_model(config).to(DEVICE)

    # Generate the optimizers.
    optimizer_name = config["optimizer"]
    lr = config["lr"]
    optimizer = getattr(optim, optimizer_name)(model.parameters(), lr=lr)

    # Get the digits dataset.
    train_loader, valid_loader = get_digits()

    # Training of the model.
    for epoch in range(config["epochs"]):
        model.train()
        for batch_idx, (data, target) in enumerate(train_loader):
            # Limiting training data for faster epochs.
            if batch_idx * BATCHSIZE >= N_TRAIN_EXAMPLES:
                break

            data, target = data.view(data.size(0), -1).to(DEVICE), target.to(DEVICE)

            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()

        # Validation of the model.
        model.eval()
        correct = 0
        with torch.no_grad():
            for batch_idx, (data, target) in enumerate(valid_loader):
                # Limiting validation data.
                if batch_idx * BATCHSIZE >= N_VALID_EXAMPLES:
                    break
                data, target = data.view(data.size(0), -1).to(DEVICE), target.to(DEVICE)
                output = model(data)
                # Get the index of the max log-probability.
                pred = output.argmax(dim=1, keepdim=True)
                correct += pred.eq(target.view_as(pred)).sum().item()

        accuracy = correct / min(len(valid_loader.dataset), N_VALID_EXAMPLES)

        report({"accuracy": accuracy, "epoch": epoch})

    return accuracy
