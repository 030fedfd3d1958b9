"""Overhead of ``trainables`` against the fastest hand-written PyTorch loop doing the same work.

Run from anywhere (the repository root is put on ``sys.path``)::

    python benchmarks/trainer_overhead.py                  # full run: 7 repetitions, prints the table
    python benchmarks/trainer_overhead.py --quick          # smoke run, seconds
    python benchmarks/trainer_overhead.py --write-readme   # also write the table into docs/benchmarks.md

The floor is the loop one writes by hand for speed: the tensors stay where they live, each
epoch gathers its rows once in a seeded order (one ``index_select``) and slices batches of
64 from that. Beside it, the same loop fed by ``DataLoader(TensorDataset)`` (what both sides
used before issue 25), so the cost of per-sample indexing and collation shows. Ours are
``Trainer.fit`` on :meth:`DataSplits.loader` batches and the built-in trainable
``train_feature_selection`` itself (config parsing, callbacks, early stopping keeping the
best weights, per-epoch reporting; no checkpoints, test part empty).

Each repetition runs every side once, from the same seed, in a rotating order so that
drift in machine speed hits all alike; one warm-up run of each is discarded. The figures
are medians of per-repetition ratios to the floor (what the verdict reads), beside the ratio
of each side's fastest run (what the code costs with the least interference). All sides must
end with the same train loss and val accuracy, proof that they trained on the same batches
(``DataSplits.loader`` draws the orders a seeded DataLoader draws) and did the same work. Targets: the plain
``Trainer`` (``mlp``) <= 1.03, the built-in trainable (``fs``) <= 1.05, and ``tiny``
(logistic regression, where per-step Python cost weighs most: the worst case) <= 1.05. CPU,
one thread by default; the process's CPU time is measured. Exit 0 when all targets pass, else
1. On a shared machine the load average (recorded with the figures) still makes ratios scatter.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, uninstalled

from benchmarks._readme import cpu_name, write_table  # noqa: E402
from trainables import FeatureSelectionModel, Trainer  # noqa: E402
from trainables.data import DataSplits  # noqa: E402
from trainables.tasks import train_feature_selection  # noqa: E402

SEED, BATCH_SIZE, LR = 0, 64, 1e-3
SPARSITY_LAMBDA, MAX_NORM, SELECTOR_LR_RATIO, MIN_DELTA = 0.01, 5.0, 10.0, 1e-4
NUM_FEATURES, NUM_CLASSES, HIDDEN = 50, 10, (256, 256)

Outputs = dict[str, float]  # the last epoch's train_loss and val_accuracy (and more)
Batches = Callable[[str], Iterable[tuple[torch.Tensor, torch.Tensor]]]  # part -> one pass of batches
LoopFn = Callable[[DataSplits, Batches, int], Outputs]  # a hand-written fit
OursFn = Callable[[DataSplits, int], Outputs]


# --------------------------------------------------------------------------- batch sources
def dataloader_order(generator: torch.Generator, n: int) -> torch.Tensor:
    """The permutation a seeded ``DataLoader(shuffle=True)`` draws for its next pass.

    A pass takes an int64 from the loader's generator (its workers' base seed), then the
    permutation, then one more permutation when its sampler runs out; drawing the same keeps
    the floor's batches identical to the DataLoader loop's, so all sides do the same work.
    """
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    order = torch.randperm(n, generator=generator)
    torch.randperm(n, generator=generator)
    return order


def sliced_batches(splits: DataSplits) -> Batches:
    """The floor: gather each train epoch once in its seeded order, slice; val in storage order."""
    tensors = {part: splits.tensors(part) for part in ("train", "val")}
    generator = torch.Generator().manual_seed(SEED)

    def batches(part: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = tensors[part]
        if part == "train":
            order = dataloader_order(generator, len(x))
            x, y = x.index_select(0, order), y.index_select(0, order)
        for start in range(0, len(x), BATCH_SIZE):
            yield x[start:start + BATCH_SIZE], y[start:start + BATCH_SIZE]

    return batches


def dataloader_batches(splits: DataSplits) -> Batches:
    """Today's loop before issue 25: ``DataLoader(TensorDataset)``, per-sample indexing and collation."""
    loaders = {"train": DataLoader(TensorDataset(*splits.tensors("train")), batch_size=BATCH_SIZE, shuffle=True,
                                   generator=torch.Generator().manual_seed(SEED)),
               # Its own generator, as DataSplits.loader gave it: without one, each pass would draw its
               # workers' base seed from the global RNG, and the gates' noise after it would differ.
               "val": DataLoader(TensorDataset(*splits.tensors("val")), batch_size=BATCH_SIZE,
                                 generator=torch.Generator().manual_seed(SEED))}
    return loaders.__getitem__


# --------------------------------------------------------------------------- hand-written loops
@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], loss_fn: nn.Module,
             penalty: float = 0.0) -> dict[str, float]:
    """Validation loss (task loss plus ``penalty``), task loss and accuracy, weighted by batch size."""
    model.eval()
    task_sum, correct, seen = 0.0, 0, 0
    for x, y in batches:
        logits = model(x)
        task_sum += loss_fn(logits, y).item() * len(y)
        correct += (logits.argmax(dim=1) == y).sum().item()
        seen += len(y)
    return {"val_loss": task_sum / seen + penalty, "val_task_loss": task_sum / seen, "val_accuracy": correct / seen}


def mlp_model() -> nn.Module:
    return nn.Sequential(nn.Linear(NUM_FEATURES, HIDDEN[0]), nn.ReLU(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.ReLU(),
                         nn.Linear(HIDDEN[1], NUM_CLASSES))


def linear_model() -> nn.Module:
    return nn.Linear(NUM_FEATURES, NUM_CLASSES)


def loop_fit(build: Callable[[], nn.Module]) -> LoopFn:
    """The loop a user writes for ``Trainer.fit``'s outputs: step, track the epoch's loss, evaluate."""

    def fit(splits: DataSplits, batches: Batches, epochs: int) -> Outputs:
        torch.manual_seed(SEED)
        model = build()
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        loss_fn = nn.CrossEntropyLoss()
        row: Outputs = {}
        for _ in range(epochs):
            model.train()
            loss_sum, seen = 0.0, 0
            for x, y in batches("train"):
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item() * len(y)
                seen += len(y)
            row = {"train_loss": loss_sum / seen, **evaluate(model, batches("val"), loss_fn)}
        return row

    return fit


def loop_fs_fit(splits: DataSplits, batches: Batches, epochs: int) -> Outputs:
    """The built-in trainable's work by hand: gates and MLP, two Adams (gates at 10x lr), CE + lambda *
    penalty, clipping with its norms recorded, train accuracy, per-epoch validation and selection
    count, and the best epoch's weights (by val task loss) kept and restored at the end."""
    torch.manual_seed(SEED)
    model = FeatureSelectionModel(splits.num_features, splits.num_classes, HIDDEN)
    gates = model.gates
    classifier_params = [p for p in model.parameters() if p is not gates.mu]
    params = [*classifier_params, gates.mu]  # the order the trainer clips in: same rounding
    optimizers = [torch.optim.Adam(classifier_params, lr=LR),
                  torch.optim.Adam([gates.mu], lr=LR * SELECTOR_LR_RATIO)]
    loss_fn = nn.CrossEntropyLoss()
    best_score, best_state, row = float("inf"), None, {}
    for _ in range(epochs):
        model.train()
        sums = dict.fromkeys(("loss", "task", "penalty", "correct", "norm", "clipped"), 0.0)
        seen, steps, norm_max = 0, 0, 0.0
        for x, y in batches("train"):
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            logits = model(x)
            task, penalty = loss_fn(logits, y), gates.penalty()
            loss = task + SPARSITY_LAMBDA * penalty
            loss.backward()
            norm = float(torch.nn.utils.clip_grad_norm_(params, MAX_NORM))
            for opt in optimizers:
                opt.step()
            n = len(y)
            sums["loss"] += loss.item() * n
            sums["task"] += task.item() * n
            sums["penalty"] += penalty.item() * n
            sums["correct"] += (logits.detach().argmax(dim=1) == y).sum().item()
            sums["norm"] += norm
            sums["clipped"] += norm > MAX_NORM
            norm_max = max(norm_max, norm)
            seen += n
            steps += 1
        with torch.no_grad():
            penalty = float(gates.penalty())
        row = {"train_loss": sums["loss"] / seen, "train_task_loss": sums["task"] / seen,
               "train_penalty": sums["penalty"] / seen, "train_accuracy": sums["correct"] / seen,
               "grad_norm_mean": sums["norm"] / steps, "grad_norm_max": norm_max,
               "clip_fraction": sums["clipped"] / steps,
               **evaluate(model, batches("val"), loss_fn, SPARSITY_LAMBDA * penalty),
               "num_selected": int(gates.selected_mask().sum())}
        if row["val_task_loss"] < best_score - MIN_DELTA:
            best_score = row["val_task_loss"]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    return row


# --------------------------------------------------------------------------- ours
def ours_fit(build: Callable[[], nn.Module]) -> OursFn:
    def fit(splits: DataSplits, epochs: int) -> Outputs:
        torch.manual_seed(SEED)
        trainer = Trainer(build(), "adam", "cross_entropy", lr=LR, device="cpu")
        train = splits.loader("train", BATCH_SIZE, seed=SEED, device="cpu")
        return trainer.fit(train, epochs, splits.loader("val", BATCH_SIZE, device="cpu")).epochs[-1]

    return fit


def ours_trainable(splits: DataSplits, epochs: int) -> Outputs:
    config = {"lr": LR, "selector_lr_ratio": SELECTOR_LR_RATIO, "sparsity_lambda": SPARSITY_LAMBDA,
              "max_norm": MAX_NORM, "min_delta": MIN_DELTA, "epochs": epochs, "patience": epochs + 1,
              "batch_size": BATCH_SIZE, "hidden_sizes": list(HIDDEN), "seed": SEED, "checkpoint_every": 0,
              "device": "cpu"}
    return train_feature_selection(config, data=splits)["history"].epochs[-1]


# --------------------------------------------------------------------------- running
@dataclass(frozen=True)
class Scenario:
    name: str
    loop: LoopFn
    ours: OursFn
    target: float  # the largest median ratio ours / floor that passes


SCENARIOS = (
    Scenario("mlp: Trainer, MLP 50-256-256-10", loop_fit(mlp_model), ours_fit(mlp_model), target=1.03),
    Scenario("fs: train_feature_selection (built-in trainable), gates + same MLP", loop_fs_fit, ours_trainable,
             target=1.05),
    Scenario("tiny: Trainer, logistic regression (worst case)", loop_fit(linear_model), ours_fit(linear_model),
             target=1.05),
)
SIDES = ("floor", "dataloader", "ours")


def make_data(n: int) -> DataSplits:
    """A learnable synthetic set: 10 informative features of 50, an 80/20 train/val split, no test part."""
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(n, NUM_FEATURES, generator=gen)
    teacher = torch.randn(NUM_FEATURES, NUM_CLASSES, generator=gen)
    teacher[10:] = 0.0
    y = (x @ teacher + 0.5 * torch.randn(n, NUM_CLASSES, generator=gen)).argmax(dim=1)
    split = n * 4 // 5
    x, y = x.numpy(), y.numpy()
    return DataSplits(x[:split], y[:split], x[split:], y[split:], x[:0], y[:0],
                      tuple(f"f{j:02d}" for j in range(NUM_FEATURES)), tuple(str(k) for k in range(NUM_CLASSES)),
                      "synthetic")


def timed(side: str, scenario: Scenario, data: DataSplits, epochs: int) -> tuple[float, Outputs]:
    """CPU seconds of one fit, model and optimizer set-up included, from the seed.

    CPU time, not wall time: on a shared machine the other processes' load stretches wall
    time by a factor that changes from run to run (2x within one repetition was seen), while
    this process's own CPU time moves much less.
    """
    gc.collect()
    started = time.process_time()
    if side == "ours":
        outputs = scenario.ours(data, epochs)
    else:
        outputs = scenario.loop(data, (sliced_batches if side == "floor" else dataloader_batches)(data), epochs)
    return time.process_time() - started, outputs


@dataclass
class Result:
    scenario: Scenario
    seconds: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})
    same_outputs: bool = True

    def ratio(self, side: str) -> float:
        return statistics.median(s / f for s, f in zip(self.seconds[side], self.seconds["floor"]))

    @property
    def passed(self) -> bool:
        return self.same_outputs and self.ratio("ours") <= self.scenario.target

    @property
    def verdict(self) -> str:
        if not self.same_outputs:
            return "FAIL (outputs differ)"
        return "PASS" if self.passed else "FAIL"


def run_scenario(scenario: Scenario, data: DataSplits, epochs: int, repeats: int) -> Result:
    for side in SIDES:  # warm-up: allocator, lazy imports, caches
        timed(side, scenario, data, epochs)
    result = Result(scenario)
    for rep in range(repeats):
        order = SIDES[rep % 3:] + SIDES[:rep % 3]
        outputs = []
        for side in order:
            seconds, out = timed(side, scenario, data, epochs)
            result.seconds[side].append(seconds)
            outputs.append(out)
        result.same_outputs &= all(abs(out[k] - outputs[0][k]) <= 1e-6
                                   for out in outputs for k in ("train_loss", "val_accuracy"))
        print(f"  rep {rep + 1}/{repeats}: " + "  ".join(f"{s} {result.seconds[s][-1]:.3f}s" for s in SIDES),
              file=sys.stderr)
    return result


def load_average() -> float:
    """The 1-minute load average: other processes compete for the cores (nan where unknown)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_line(args: argparse.Namespace, argv: Sequence[str], loads: tuple[float, float]) -> str:
    uname = platform.uname()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"Machine: {cpu_name()} ({uname.machine}, {uname.system} {uname.release}), "
            f"{os.cpu_count()} cores, {gpu} (load average {loads[0]:.1f} at start, {loads[1]:.1f} at end); "
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"{args.threads} thread(s); {datetime.date.today().isoformat()}; {args.repeats} rotating "
            f"repetitions of {args.epochs} epochs on {args.samples} samples; "
            f"`{shlex.join(['python', 'benchmarks/trainer_overhead.py', *argv])}`")


def table(results: Sequence[Result], machine: str) -> str:
    rows = ["| scenario | floor: sliced tensors, median CPU s | DataLoader loop, median CPU s (ratio) "
            "| ours, median CPU s | ours / floor (median) | ours / floor (fastest runs) | target | verdict |",
            "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        median = {side: statistics.median(r.seconds[side]) for side in SIDES}
        rows.append(f"| {r.scenario.name} | {median['floor']:.3f} | {median['dataloader']:.3f} "
                    f"({r.ratio('dataloader'):.2f}×) | {median['ours']:.3f} | {r.ratio('ours'):.3f} "
                    f"| {min(r.seconds['ours']) / min(r.seconds['floor']):.3f} "
                    f"| ≤ {r.scenario.target:.2f} | {r.verdict} |")
    return "\n".join(rows) + f"\n\n{machine}\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="rotating repetitions per scenario (default 7)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: less noise)")
    parser.add_argument("--samples", type=int, default=20_000, help="synthetic samples, 80%% train (default 20000)")
    parser.add_argument("--only", choices=[s.name.split(":")[0] for s in SCENARIOS], action="append",
                        help="run only this scenario (repeatable)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 repeats, 1 epoch, 4000 samples")
    parser.add_argument("--write-readme", action="store_true",
                        help="also write the table into docs/benchmarks.md (between its markers)")
    args = parser.parse_args(argv)
    if args.quick:
        if args.write_readme:
            parser.error("--quick figures are too noisy for the docs; drop one of the two flags")
        args.repeats, args.epochs, args.samples = 2, 1, 4_000
    if min(args.repeats, args.epochs, args.threads) < 1 or args.samples < 2 * BATCH_SIZE:
        parser.error("--repeats, --epochs and --threads must be >= 1, --samples >= 128")
    torch.set_num_threads(args.threads)
    load = load_average()
    if load > 0.5:  # other processes slow every side, unevenly: the ratios scatter
        print(f"warning: load average {load:.1f}: other processes are running, the figures will be noisy",
              file=sys.stderr)
    data = make_data(args.samples)
    results = []
    for scenario in SCENARIOS:
        if args.only and scenario.name.split(":")[0] not in args.only:
            continue
        print(f"{scenario.name}:", file=sys.stderr)
        results.append(run_scenario(scenario, data, args.epochs, args.repeats))
    for r in results:
        print(f"{r.scenario.name}: " + "; ".join(
            f"{side} min {min(r.seconds[side]):.3f}s median {statistics.median(r.seconds[side]):.3f}s"
            for side in SIDES) + f"; ours / floor {r.ratio('ours'):.3f} -> {r.verdict}")
    markdown = table(results, machine_line(args, argv, (load, load_average())))
    print(f"\n{markdown}")
    if args.write_readme:
        print(f"wrote {write_table('trainer_overhead', markdown)}", file=sys.stderr)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
