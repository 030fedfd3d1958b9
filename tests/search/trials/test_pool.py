"""The worker pool's mailbox, driven directly (no Ray): jobs, reports, answers, cancellation, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from search.trials.mailbox import Mailbox, pack_folder, unpacked


def run(coro):
    return asyncio.run(coro)


def test_every_rank_takes_every_job_in_order_and_closing_ends_the_loop():
    async def scenario():
        box = Mailbox(world_size=2)
        first = await box.submit({"config": {"x": 1}})
        second = await box.submit({"config": {"x": 2}})
        assert (first, second) == (0, 1)
        jobs = [await box.next_job(0, -1), await box.next_job(1, -1), await box.next_job(0, 0)]
        assert [j["seq"] for j in jobs] == [0, 0, 1] and jobs[2]["config"] == {"x": 2}
        waiting = asyncio.create_task(box.next_job(0, 1))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # no job after 1 yet: the worker waits
        await box.close()
        assert await asyncio.wait_for(waiting, 1) is None

    run(scenario())


def test_rank0_reports_reach_the_trial_and_all_ranks_get_its_answer():
    async def scenario():
        box = Mailbox(world_size=2)
        seq = await box.submit({})
        rank0 = asyncio.create_task(box.report(seq, 0, 0, {"metrics": {"epoch": 1}}))
        rank1 = asyncio.create_task(box.report(seq, 1, 0, None))
        assert await box.next_event(seq, 1) == ("report", 0, {"metrics": {"epoch": 1}})
        await asyncio.sleep(0.05)
        assert not rank0.done() and not rank1.done()  # both wait for the trial's answer
        await box.answer(seq, 0, True)
        assert await asyncio.wait_for(asyncio.gather(rank0, rank1), 1) == [True, True]
        # Only rank 0's report was posted.
        assert await box.next_event(seq, 0.05) is None

    run(scenario())


def test_a_cancelled_job_stops_every_rank_at_the_same_report_and_is_skipped():
    async def scenario():
        box = Mailbox(world_size=2)
        seq = await box.submit({})
        later = await box.submit({})
        waiting = [asyncio.create_task(box.report(seq, r, 3, {} if r == 0 else None)) for r in (0, 1)]
        await box.next_event(seq, 1)
        await box.cancel(seq)
        assert await asyncio.wait_for(asyncio.gather(*waiting), 1) == [False, False]
        assert await box.report(seq, 0, 4, {}) is False  # any later report: stop at once
        for rank in (0, 1):
            await box.finish(seq, rank, None)
        assert await box.next_event(seq, 1) == ("done", None, None)
        # A worker looking for work does not take a cancelled job that it had not started...
        third = await box.submit({})
        await box.cancel(later)
        assert (await box.next_job(0, seq))["seq"] == third
        # ...and counts as having left it, so "done" does not wait for it.
        assert await box.next_event(later, 0.05) is None  # rank 1 has not looked for work yet
        assert (await box.next_job(1, seq))["seq"] == third
        assert await box.next_event(later, 1) == ("done", None, None)

    run(scenario())


def test_the_first_error_is_posted_at_once_and_done_once_every_rank_finished():
    async def scenario():
        box = Mailbox(world_size=2)
        seq = await box.submit({})
        await box.finish(seq, 1, "Traceback ...\nValueError: boom")
        assert await box.next_event(seq, 1) == ("error", 1, "Traceback ...\nValueError: boom")
        assert await box.next_event(seq, 0.05) is None  # rank 0 has not finished yet
        await box.finish(seq, 0, "Traceback ...\nRuntimeError: collective aborted")
        assert await box.next_event(seq, 1) == ("done", None, None)  # the second error is not posted
        await box.forget(seq)
        await box.finish(seq, 0, None)  # late news of a forgotten job is ignored
        assert seq not in box.events and not box.answers
        assert await asyncio.wait_for(box.report(seq, 0, 9, {}), 1) is False  # and a late report stops at once

    run(scenario())


def test_checkpoint_folders_travel_as_files(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.pt").write_bytes(b"\x00\x01weights")
    (tmp_path / "sub" / "meta.json").write_text('{"epoch": 3}')
    files = pack_folder(tmp_path)
    assert files == {"model.pt": b"\x00\x01weights", "sub/meta.json": b'{"epoch": 3}'}
    with unpacked(files, "test-") as folder:
        assert (Path(folder) / "sub" / "meta.json").read_text() == '{"epoch": 3}'
        assert (Path(folder) / "model.pt").read_bytes() == b"\x00\x01weights"
    assert not Path(folder).exists()  # removed afterwards
    with unpacked(None, "test-") as nothing:
        assert nothing is None


@pytest.mark.parametrize("world_size", [1, 3])
def test_done_needs_every_rank(world_size):
    async def scenario():
        box = Mailbox(world_size=world_size)
        seq = await box.submit({})
        for rank in range(world_size - 1):
            await box.finish(seq, rank, None)
            assert await box.next_event(seq, 0.01) is None
        await box.finish(seq, world_size - 1, None)
        assert await box.next_event(seq, 1) == ("done", None, None)

    run(scenario())


@pytest.mark.ray
def test_tune_retiring_a_trial_process_closes_its_pools(ray_cluster, monkeypatch):  # with_parameters puts to Ray
    from ray.tune.trainable.function_trainable import FunctionTrainable, wrap_function

    from search.trials import pool

    # The class Tune wraps the pooled trial function in carries the mixin...
    trainable_cls = wrap_function(pool.pooled_trainable(setup=None))
    assert issubclass(trainable_cls, pool.ClosesPools) and issubclass(trainable_cls, FunctionTrainable)
    assert trainable_cls.__mro__.index(pool.ClosesPools) < trainable_cls.__mro__.index(FunctionTrainable)

    # ...whose cleanup (what Tune's stop() calls) closes the pools after Tune's own cleanup, even if it raises.
    calls = []

    class Base:
        def cleanup(self):
            calls.append("tune")
            raise RuntimeError("training thread failed")

    class Trial(pool.ClosesPools, Base):
        pass

    monkeypatch.setattr(pool, "close_pools", lambda: calls.append("pools"))
    with pytest.raises(RuntimeError, match="training thread failed"):
        Trial().cleanup()
    assert calls == ["tune", "pools"]


def test_a_rank_waiting_for_work_leaves_a_job_cancelled_before_it_started():
    async def scenario():
        box = Mailbox(world_size=2)
        first = await box.submit({})
        assert (await box.next_job(0, -1))["seq"] == first
        assert (await box.next_job(1, -1))["seq"] == first
        for rank in (0, 1):
            await box.finish(first, rank, None)
        await box.next_event(first, 1)
        # Rank 1 is already waiting for the next job; rank 0 is slow (still cleaning up).
        waiting = asyncio.create_task(box.next_job(1, first))
        second = await box.submit({})
        await asyncio.sleep(0.05)
        assert (await asyncio.wait_for(waiting, 1))["seq"] == second
        # Rank 1 reports at once and rank 0 has not started: the trial gives the job up.
        await box.cancel(second)
        assert await box.report(second, 1, 0, None) is False
        await box.finish(second, 1, None)
        slow = asyncio.create_task(box.next_job(0, first))
        assert await box.next_event(second, 1) == ("done", None, None)  # rank 0 skipped it
        await box.close()
        assert await asyncio.wait_for(slow, 1) is None

    run(scenario())


def test_an_answer_holds_for_every_rank_even_if_the_job_is_cancelled_after_it():
    async def scenario():
        box = Mailbox(world_size=2)
        seq = await box.submit({})
        rank0 = asyncio.create_task(box.report(seq, 0, 0, {}))
        await box.next_event(seq, 1)
        await box.answer(seq, 0, True)
        assert await asyncio.wait_for(rank0, 1) is True
        await box.cancel(seq)  # e.g. the trial stopped right after answering
        assert await box.report(seq, 1, 0, None) is True  # rank 1, late, gets the same answer as rank 0
        assert await box.report(seq, 1, 1, None) is False  # and stops at the next report, as rank 0 will

    run(scenario())


def test_a_rank_reporting_after_rank_0_finished_is_stopped():
    async def scenario():
        box = Mailbox(world_size=2)
        seq = await box.submit({})
        await box.finish(seq, 0, None)
        assert await asyncio.wait_for(box.report(seq, 1, 5, None), 1) is False

    run(scenario())
