"""The scheduler in plain Python: admission, the prefill budget, retirement and aborts."""

from __future__ import annotations

from loupe.domain import GenerationEvent, SamplingParams
from loupe.engines.local.scheduler import Scheduler
from loupe.engines.local.sequence import Request, Status


def request(prompt: int, n: int = 1, max_tokens: int = 4, stop: tuple[str, ...] = ()) -> Request:
    events: list[GenerationEvent] = []
    return Request.create(
        range(prompt), SamplingParams(n=n, stop=stop), max_tokens, {99}, lambda ids: "".join(f"<{i}>" for i in ids), events.append
    )


def test_one_request_per_step_when_the_budget_is_small() -> None:
    scheduler = Scheduler(max_running=8, prefill_budget=10)
    a, b = request(8), request(8)
    scheduler.add(a)
    scheduler.add(b)
    first = scheduler.schedule()
    assert first.prefill == (a,) and first.decode == ()
    second = scheduler.schedule()
    assert second.prefill == (b,) and second.decode == tuple(a.sequences)
    assert scheduler.schedule().decode == (*a.sequences, *b.sequences)


def test_a_long_prompt_is_still_admitted_alone() -> None:
    scheduler = Scheduler(max_running=8, prefill_budget=10)
    big = request(50)
    scheduler.add(big)
    assert scheduler.schedule().prefill == (big,)


def test_running_sequences_are_capped_and_siblings_join_together() -> None:
    scheduler = Scheduler(max_running=3, prefill_budget=1000)
    pair, other = request(4, n=2), request(4, n=2)
    scheduler.add(pair)
    scheduler.add(other)
    assert scheduler.schedule().prefill == (pair,)
    assert scheduler.schedule().prefill == ()  # 2 + 2 > 3: waits
    for seq in pair.sequences:
        seq.finish("stop")
        scheduler.retire(seq)
    assert scheduler.schedule().prefill == (other,)


def test_sequences_finish_on_eos_budget_and_stop_string() -> None:
    eos, budget, stopped = request(2), request(2, max_tokens=2), request(2, stop=("<7>",))
    eos.sequences[0].append(5)
    eos.sequences[0].append(99)
    assert eos.sequences[0].finish_reason == "stop" and eos.sequences[0].generated == 2
    budget.sequences[0].append(5)
    assert not budget.finished
    budget.sequences[0].append(6)
    assert budget.sequences[0].finish_reason == "length" and budget.finished
    assert stopped.sequences[0].append(6) == "<6>"
    assert stopped.sequences[0].append(7) == ""
    assert stopped.sequences[0].finish_reason == "stop"


def test_abort_removes_a_request_wherever_it_is() -> None:
    scheduler = Scheduler(max_running=8, prefill_budget=100)
    running, waiting = request(4, n=2), request(200)
    scheduler.add(running)
    scheduler.schedule()
    scheduler.add(waiting)
    assert set(map(id, scheduler.requests())) == {id(running), id(waiting)}
    assert scheduler.abort(running) == running.sequences
    assert all(s.status is Status.FINISHED and s.finish_reason == "cancelled" for s in running.sequences)
    assert scheduler.abort(waiting) == []
    assert scheduler.idle


def test_a_cost_function_replaces_the_prompt_length_against_the_budget() -> None:
    costs: dict[int, int] = {}
    scheduler = Scheduler(max_running=8, prefill_budget=100, cost=lambda r: costs[r.id])
    light, heavy, after = request(10), request(10), request(10)
    costs.update({light.id: 10, heavy.id: 95, after.id: 10})
    for r in (light, heavy, after):
        scheduler.add(r)
    assert scheduler.schedule().prefill == (light,)  # 10 + 95 > 100: the heavy one waits
    assert scheduler.schedule().prefill == (heavy,)  # alone, whatever it costs
    assert scheduler.schedule().prefill == (after,)
