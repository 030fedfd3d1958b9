"""The trainer's callback registry: register once, keep order, notify the hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from trainables.callbacks.base import HOOKS, Callback, FunctionCallback

__all__ = ["CallbackHost"]


class CallbackHost:
    """Holds ``callbacks`` sorted by ``order`` and calls their hooks (:class:`~trainables.trainer.Trainer`'s base)."""

    callbacks: list[Callback]
    _hooked: dict[str, list[Callback]]

    def add_callbacks(self, callbacks: Iterable[Callback | Callable[..., Any]]) -> list[Callback]:
        """Register callbacks (functions are wrapped in :class:`FunctionCallback`); returns those added.

        A callback already registered (the same object, or a function already wrapped) is
        not added again: passing the same list to a second ``fit`` runs each callback once.
        """
        added: list[Callback] = []
        for cb in callbacks:
            if not isinstance(cb, Callback):
                if not callable(cb):
                    raise TypeError(f"callback {cb!r} is neither a Callback nor a function f(trainer, epoch, metrics)")
                cb = FunctionCallback(cb)
            if not self._is_registered(cb):
                self.callbacks.append(cb)
                added.append(cb)
        self._sort_callbacks()
        return added

    def remove_callbacks(self, callbacks: Iterable[Callback]) -> None:
        """Unregister callbacks (by identity)."""
        gone = {id(cb) for cb in callbacks}
        self.callbacks = [cb for cb in self.callbacks if id(cb) not in gone]
        self._sort_callbacks()

    def _is_registered(self, cb: Callback) -> bool:
        fn = getattr(cb, "fn", None) if isinstance(cb, FunctionCallback) else None
        return any(c is cb or (fn is not None and type(c) is type(cb) and c.fn is fn)  # type: ignore[attr-defined]
                   for c in self.callbacks)

    def _sort_callbacks(self) -> None:
        self.callbacks.sort(key=lambda c: c.order)  # stable: equal orders keep insertion order
        # Per-batch hooks run thousands of times: keep only callbacks that override them.
        self._hooked = {h: [c for c in self.callbacks if getattr(type(c), h) is not getattr(Callback, h)] for h in HOOKS}

    def _notify(self, hook: str, *args: Any) -> None:
        for cb in self._hooked[hook]:
            getattr(cb, hook)(self, *args)

