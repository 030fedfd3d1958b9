"""Name -> lazy import registries for trainables and Optuna samplers."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from search.spec.errors import did_you_mean

__all__ = ["TRAINABLES", "SAMPLERS", "TrainableError", "is_ray_style", "resolve_callable", "resolve_trainable", "build_sampler", "sampler_problems"]

#: Built-in trainables: name -> "module:function".
TRAINABLES: dict[str, str] = {
    "feature_selection": "trainables.tasks:train_feature_selection",
}

#: Optuna samplers: name -> (module, class, needs-package hint).
SAMPLERS: dict[str, tuple[str, str, str | None]] = {
    "tpe": ("optuna.samplers", "TPESampler", None),
    "random": ("optuna.samplers", "RandomSampler", None),
    "cmaes": ("optuna.samplers", "CmaEsSampler", "cmaes"),
    "gp": ("optuna.samplers", "GPSampler", "scipy"),
    "qmc": ("optuna.samplers", "QMCSampler", "scipy"),
    "nsga2": ("optuna.samplers", "NSGAIISampler", None),  # multi-objective (TPE handles several objectives too)
}


class TrainableError(ValueError):
    """A trainable reference that cannot be resolved to a callable."""


def trainable_ref(name: str) -> str:
    """``module:function`` for a built-in name or a user's reference."""
    return TRAINABLES.get(name, name)


def resolve_trainable(name: str, search_paths: tuple[str | Path, ...] = ()) -> Callable[..., Any]:
    """Import a built-in trainable by name, or a user's ``package.module:function``.

    For a user's module, ``search_paths`` (the current folder, the spec's folder) are added at
    the *end* of ``sys.path``, so a module next to the spec imports without installing it, but a
    file there never shadows an installed package (a ``numpy.py`` beside someone's spec is not
    numpy). A built-in trainable touches ``sys.path`` not at all.
    """
    ref = trainable_ref(name)
    if ":" not in ref:
        raise TrainableError(f"unknown trainable {name!r}{did_you_mean(name, TRAINABLES)}; use a built-in "
                             f"({', '.join(TRAINABLES)}) or 'package.module:function'")
    fn = resolve_callable(ref, () if name in TRAINABLES else search_paths, "trainable")
    if is_ray_style(fn):
        return fn
    from trainables.api import accepted_context

    try:  # bind as search will call it: (config, report, **the context keywords it declares)
        inspect.signature(fn).bind({}, lambda m, c=None: None, **dict.fromkeys(accepted_context(fn)))
    except TypeError as exc:
        raise TrainableError(f"trainable {ref!r} must accept (config, report) plus optional keywords "
                             f"data, resume_from, world, or be a Ray-style function of (config) alone that "
                             f"reports with ray.tune.report / ray.train.report: {exc}") from exc
    return fn


def resolve_callable(ref: str, search_paths: tuple[str | Path, ...] = (), what: str = "trainable") -> Callable[..., Any]:
    """Import ``package.module:function`` (a trainable, a data loader); TrainableError saying what is wrong.

    ``search_paths`` (the current folder, the spec's folder) are added at the *end* of ``sys.path``: a
    module next to the spec imports without installing it, but never shadows an installed package.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise TrainableError(f"{what} {ref!r}: write it as 'package.module:function'")
    for path in search_paths:
        if str(path) not in sys.path:
            sys.path.append(str(path))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainableError(f"cannot import module {module_name!r} of {what} {ref!r}: {exc}. Check the "
                             "name, and run from the folder that contains the package (or install it)") from exc
    fn = getattr(module, attr, None)
    if fn is None:
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise TrainableError(f"module {module_name!r} has no function {attr!r}{did_you_mean(attr, public)}")
    if not callable(fn):
        raise TrainableError(f"{what} {ref!r} is not callable")
    return fn


def is_ray_style(fn: Callable[..., Any]) -> bool:
    """True for a Ray Tune / Ray Train function: ``fn(config)``, reporting through ``ray.tune.report`` or
    ``ray.train.report`` itself, rather than ``fn(config, report)``.

    That is: it takes one positional argument, or its second one has a default and is not named
    ``report`` (``train_cifar(config, data_dir=None)``, as Ray's tutorial writes it). A function that
    cannot be inspected is taken as ``(config, report)``.
    """
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        inspect.signature(fn).bind({})
    except (TypeError, ValueError):
        return False
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in inspect.signature(fn).parameters.values()):
        return False
    if len(params) < 2:
        return True
    second = params[1]
    return second.default is not inspect.Parameter.empty and second.name != "report"


def _sampler_class(name: str) -> type:
    module, cls, _ = SAMPLERS[name]
    return getattr(importlib.import_module(module), cls)


def sampler_problems(name: str, options: Mapping[str, Any]) -> list[str]:
    """What is wrong with a sampler choice and its options (empty when fine)."""
    if name not in SAMPLERS:
        return [f"unknown sampler {name!r}{did_you_mean(name, SAMPLERS)}"]
    hint = SAMPLERS[name][2]
    if hint and importlib.util.find_spec(hint) is None:
        return [f"sampler {name!r} needs the {hint!r} package: pip install {hint}"]
    params = inspect.signature(_sampler_class(name)).parameters
    allowed = [p for p in params if p not in ("self", "seed")]
    return [f"sampler_options.{key}: {SAMPLERS[name][1]} has no option {key!r}{did_you_mean(key, allowed)}; "
            f"options: {', '.join(allowed)}" for key in options if key not in allowed]


def build_sampler(name: str, seed: int | None, options: Mapping[str, Any]) -> Any:
    """An Optuna sampler instance, seeded (a seed of 0 is kept, unlike OptunaSearch's own)."""
    cls = _sampler_class(name)
    kwargs = dict(options)
    if "seed" in inspect.signature(cls).parameters:
        kwargs["seed"] = seed
    return cls(**kwargs)
