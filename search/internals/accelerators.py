"""The GPUs an embedded Ray would give its node, counted without starting Ray or importing torch."""

from __future__ import annotations

import logging

from search.internals.errors import unavailable

__all__ = ["node_gpus"]

log = logging.getLogger(__name__)


def node_gpus() -> int:
    """The GPUs ``ray.init`` here would count: Ray's GPU accelerator manager's devices on this node (NVML for
    NVIDIA), no more than ``CUDA_VISIBLE_DEVICES`` (or the vendor's own variable) names, as Ray's
    ``ResourceAndLabelSpec`` counts them. 0 where Ray cannot tell (no driver, another Ray)."""
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource

        manager = get_accelerator_manager_for_resource("GPU")
        if manager is None:
            return 0
        count = int(manager.get_current_node_num_accelerators())
        visible = manager.get_current_process_visible_accelerator_ids()
    except Exception as exc:  # noqa: BLE001 - another Ray or a broken driver: plan for CPU, as Ray would start
        log.debug("%s", unavailable("ray._private.accelerators.get_accelerator_manager_for_resource", exc))
        return 0
    return min(count, len(visible)) if visible is not None else count
