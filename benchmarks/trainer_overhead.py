"""Overhead of ``Trainer.fit`` against a hand-written PyTorch loop doing the same work.

Run from anywhere (the repository root is put on ``sys.path``)::

    python benchmarks/trainer_overhead.py                  # full run: 7 repetitions
    python benchmarks/trainer_overhead.py --quick          # smoke run, seconds
    python benchmarks/trainer_overhead.py --write-readme   # also update README.md's table

Each repetition trains copies of one initial model on the same seeded batches (64) twice:
with the minimal loop a user would write for the same outputs, and with ``trainables``;
the order alternates, so drift in machine speed hits both alike, and one warm-up run of
each is discarded. The figure is the median of per-repetition ratios ours / baseline;
both sides must end with the same train loss and val accuracy, proof that they did the
same work (neither measures training accuracy: the trainer's ``train_accuracy`` is off
by default). Targets: ``mlp`` <= 1.05, ``fs`` <= 1.03, and ``tiny`` (logistic regression,
where per-step Python cost weighs most: the worst case) <= 1.05. CPU, one thread by
default. Exit 0 when all targets pass, else 1. On a shared machine the load average
(recorded with the figures) makes ratios scatter.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gc
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, uninstalled

from benchmarks._readme import cpu_name, write_table  # noqa: E402
from trainables import FeatureSelectionModel, FeatureSelectionTrainer, Trainer  # noqa: E402

TARGET = 1.05  # the default; a scenario may set its own
SEED, BATCH_SIZE, LR = 0, 64, 1e-3
SPARSITY_LAMBDA, MAX_NORM, SELECTOR_LR_RATIO = 0.01, 5.0, 10.0
NUM_FEATURES, NUM_CLASSES, HIDDEN = 50, 10, (256, 256)

Outputs = dict[str, float]  # the last epoch's train_loss and val_accuracy
FitFn = Callable[[nn.Module, DataLoader, DataLoader, int], Outputs]
Data = tuple[TensorDataset, TensorDataset]  # (train, val)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, loss_fn: nn.Module) -> tuple[float, float]:
    """Validation loss and accuracy over the whole loader, weighted by batch size."""
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in loader:
        logits = model(x)
        loss_sum += loss_fn(logits, y).item() * len(y)
        correct += (logits.argmax(dim=1) == y).sum().item()
        seen += len(y)
    return loss_sum / seen, correct / seen


def baseline_fit(model: nn.Module, train: DataLoader, val: DataLoader, epochs: int) -> Outputs:
    """The loop a user writes: step, track the epoch's loss, evaluate each epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    history: list[Outputs] = []
    for _ in range(epochs):
        model.train()
        loss_sum, seen = 0.0, 0
        for x, y in train:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
        val_loss, val_accuracy = evaluate(model, val, loss_fn)
        history.append({"train_loss": loss_sum / seen, "val_loss": val_loss, "val_accuracy": val_accuracy})
    return history[-1]


def baseline_fs_fit(model: nn.Module, train: DataLoader, val: DataLoader, epochs: int) -> Outputs:
    """Two Adams (gates at 10x lr), CE + lambda * penalty, clipping, selected-feature count."""
    assert isinstance(model, FeatureSelectionModel)
    gates = model.gates
    classifier_params = [p for p in model.parameters() if p is not gates.mu]
    params = [*classifier_params, gates.mu]  # the order the trainer clips in: same rounding
    optimizers = [torch.optim.Adam(classifier_params, lr=LR),
                  torch.optim.Adam([gates.mu], lr=LR * SELECTOR_LR_RATIO)]
    loss_fn = nn.CrossEntropyLoss()
    history: list[Outputs] = []
    for _ in range(epochs):
        model.train()
        loss_sum, seen = 0.0, 0
        for x, y in train:
            for opt in optimizers:
                opt.zero_grad()
            loss = loss_fn(model(x), y) + SPARSITY_LAMBDA * gates.penalty()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_NORM)
            for opt in optimizers:
                opt.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
        val_loss, val_accuracy = evaluate(model, val, loss_fn)
        history.append({"train_loss": loss_sum / seen, "val_loss": val_loss, "val_accuracy": val_accuracy,
                        "num_selected": int(gates.selected_mask().sum())})
    return history[-1]


def ours_fit(model: nn.Module, train: DataLoader, val: DataLoader, epochs: int) -> Outputs:
    return Trainer(model, "adam", "cross_entropy", lr=LR, device="cpu").fit(train, epochs, val).epochs[-1]


def ours_fs_fit(model: nn.Module, train: DataLoader, val: DataLoader, epochs: int) -> Outputs:
    trainer = FeatureSelectionTrainer(model, lr=LR, selector_lr_ratio=SELECTOR_LR_RATIO,
                                      sparsity_lambda=SPARSITY_LAMBDA, max_norm=MAX_NORM, device="cpu")
    return trainer.fit(train, epochs, val).epochs[-1]


@dataclass(frozen=True)
class Scenario:
    name: str
    build_model: Callable[[], nn.Module]
    baseline: FitFn
    ours: FitFn
    target: float = TARGET  # the largest median ratio ours / baseline that passes


SCENARIOS = (
    Scenario("mlp: Trainer, MLP 50-256-256-10", lambda: nn.Sequential(
        nn.Linear(NUM_FEATURES, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(),
        nn.Linear(HIDDEN[1], NUM_CLASSES)), baseline_fit, ours_fit),
    Scenario("fs: FeatureSelectionTrainer, same MLP", lambda: FeatureSelectionModel(NUM_FEATURES, NUM_CLASSES, HIDDEN),
             baseline_fs_fit, ours_fs_fit, target=1.03),
    Scenario("tiny: Trainer, logistic regression (worst case)", lambda: nn.Linear(NUM_FEATURES, NUM_CLASSES),
             baseline_fit, ours_fit),
)


def make_data(n: int) -> Data:
    """A learnable synthetic set: 10 informative features of 50, an 80/20 train/val split."""
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(n, NUM_FEATURES, generator=gen)
    teacher = torch.randn(NUM_FEATURES, NUM_CLASSES, generator=gen)
    teacher[10:] = 0.0
    y = (x @ teacher + 0.5 * torch.randn(n, NUM_CLASSES, generator=gen)).argmax(dim=1)
    split = n * 4 // 5
    return TensorDataset(x[:split], y[:split]), TensorDataset(x[split:], y[split:])


def timed_run(fit: FitFn, template: nn.Module, data: Data, epochs: int) -> tuple[float, Outputs]:
    """Seconds for one fit (optimizer set-up included) from identical weights, shuffles and RNG."""
    model = copy.deepcopy(template)
    train = DataLoader(data[0], batch_size=BATCH_SIZE, shuffle=True, generator=torch.Generator().manual_seed(SEED))
    val = DataLoader(data[1], batch_size=BATCH_SIZE)
    torch.manual_seed(SEED)  # the gates' noise draws from the global generator
    gc.collect()
    started = time.perf_counter()
    outputs = fit(model, train, val, epochs)
    return time.perf_counter() - started, outputs


@dataclass
class Result:
    scenario: Scenario
    baseline_s: list[float]
    ours_s: list[float]
    same_outputs: bool

    @property
    def ratio(self) -> float:
        return statistics.median(o / b for o, b in zip(self.ours_s, self.baseline_s))

    @property
    def passed(self) -> bool:
        return self.same_outputs and self.ratio <= self.scenario.target

    @property
    def verdict(self) -> str:
        if not self.same_outputs:
            return "FAIL (outputs differ)"
        return "PASS" if self.passed else "FAIL"


def run_scenario(scenario: Scenario, data: Data, epochs: int, repeats: int) -> Result:
    torch.manual_seed(SEED)
    template = scenario.build_model()
    timed_run(scenario.baseline, template, data, epochs)  # warm-up: allocator, lazy imports, caches
    timed_run(scenario.ours, template, data, epochs)
    result = Result(scenario, [], [], same_outputs=True)
    for rep in range(repeats):
        sides = [(scenario.baseline, result.baseline_s), (scenario.ours, result.ours_s)]
        outputs = []
        for fit, times in sides if rep % 2 == 0 else sides[::-1]:
            seconds, out = timed_run(fit, template, data, epochs)
            times.append(seconds)
            outputs.append(out)
        result.same_outputs &= all(abs(outputs[0][k] - outputs[1][k]) <= 1e-6 for k in ("train_loss", "val_accuracy"))
        print(f"  rep {rep + 1}/{repeats}: baseline {result.baseline_s[-1]:.3f}s  ours {result.ours_s[-1]:.3f}s  "
              f"ratio {result.ours_s[-1] / result.baseline_s[-1]:.3f}", file=sys.stderr)
    return result


def load_average() -> float:
    """The 1-minute load average: other processes compete for the cores (nan where unknown)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_line(args: argparse.Namespace, argv: Sequence[str], loads: tuple[float, float]) -> str:
    uname = platform.uname()
    return (f"Machine: {cpu_name()} ({uname.machine}, {uname.system} {uname.release}), "
            f"{os.cpu_count()} CPUs (load average {loads[0]:.1f} at start, {loads[1]:.1f} at end); "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"{args.threads} thread(s); {datetime.date.today().isoformat()}; {args.repeats} interleaved "
            f"repetitions of {args.epochs} epochs on {args.samples} samples; "
            f"`{shlex.join(['python', 'benchmarks/trainer_overhead.py', *argv])}`")


def table(results: Sequence[Result], machine: str) -> str:
    rows = ["| scenario | baseline median s | ours median s | median ratio | target | verdict |",
            "|---|---:|---:|---:|---:|---|"]
    for r in results:
        rows.append(f"| {r.scenario.name} | {statistics.median(r.baseline_s):.3f} | {statistics.median(r.ours_s):.3f} "
                    f"| {r.ratio:.3f} | ≤ {r.scenario.target:.2f} | {r.verdict} |")
    return "\n".join(rows) + f"\n\n{machine}\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repetitions per scenario (default 7)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: less noise)")
    parser.add_argument("--samples", type=int, default=20_000, help="synthetic samples, 80%% train (default 20000)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 repeats, 1 epoch, 4000 samples")
    parser.add_argument("--write-readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args(argv)
    if args.quick:
        if args.write_readme:
            parser.error("--quick figures are too noisy for the README; drop one of the two flags")
        args.repeats, args.epochs, args.samples = 2, 1, 4_000
    if min(args.repeats, args.epochs, args.threads) < 1 or args.samples < 2 * BATCH_SIZE:
        parser.error("--repeats, --epochs and --threads must be >= 1, --samples >= 128")
    torch.set_num_threads(args.threads)
    load = load_average()
    if load > 0.5:  # other processes slow both sides, unevenly: the ratios scatter
        print(f"warning: load average {load:.1f}: other processes are running, the figures will be noisy",
              file=sys.stderr)
    data = make_data(args.samples)
    results = []
    for scenario in SCENARIOS:
        print(f"{scenario.name}:", file=sys.stderr)
        results.append(run_scenario(scenario, data, args.epochs, args.repeats))
    for r in results:
        print(f"{r.scenario.name}: baseline min {min(r.baseline_s):.3f}s median {statistics.median(r.baseline_s):.3f}s; "
              f"ours min {min(r.ours_s):.3f}s median {statistics.median(r.ours_s):.3f}s; "
              f"median ratio {r.ratio:.3f} -> {r.verdict}")
    markdown = table(results, machine_line(args, argv, (load, load_average())))
    print(f"\n{markdown}")
    if args.write_readme:
        print(f"wrote {write_table('trainer_overhead', markdown)}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
