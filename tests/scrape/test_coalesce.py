"""scrape/coalesce.py through its clock and deadline seams: who waits for what, and which call runs how long.

The coalescer's clock is ``Clock``: the real monotonic clock plus an offset a test may move forward, so a
deadline or a retry gap can be passed without waiting for it. The work is a function the test holds back with
an event, so "the call is still running" is a fact, not a race; every wait has a margin of seconds.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest

from pingaway_exporter.scrape.coalesce import Coalescer, DeadlineExceeded, Runners
from pingaway_exporter.upstream.deadline import Deadline, as_deadline
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.unit

WAIT = 10.0  # seconds: how long a test waits for something that should happen at once


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Work:
    """Upstream work the test controls: each call records its deadline, waits for ``release`` and answers."""

    def __init__(self, answers=None, clock=time.monotonic) -> None:
        self.clock = clock
        self.deadlines: list[Deadline] = []
        self.entered_at: list[float] = []
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.answers = list(answers or [])
        self.hold = True

    def __call__(self, deadline: Deadline):
        self.deadlines.append(deadline)
        self.entered_at.append(self.clock())
        number = len(self.deadlines)
        self.entered.release()
        if self.hold:
            assert self.release.wait(WAIT), "the test never released the work"
        answer = self.answers.pop(0) if self.answers else f"answer {number}"
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=WAIT), "the work did not start"


class Waiter(threading.Thread):
    """One scrape in its own thread: ``run(deadline)``, keeping what it got."""

    def __init__(self, coalescer: Coalescer, deadline: float) -> None:
        super().__init__(daemon=True)
        self.coalescer, self.deadline = coalescer, deadline
        self.result: object = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.coalescer.run(self.deadline)
        except BaseException as exc:
            self.error = exc

    def done(self) -> Waiter:
        self.join(WAIT)
        assert not self.is_alive(), "the waiter did not answer"
        return self


# ---- Deadline -----------------------------------------------------------------------------------------------

def test_a_deadline_moves_only_later_and_never_past_its_cap():
    clock = Clock()
    d = Deadline(10.0, cap=30.0, monotonic=lambda: 4.0)
    d.extend(5.0)
    assert d.at == 10.0
    d.extend(20.0)
    assert d.at == 20.0
    d.extend(99.0)
    assert d.at == 30.0 and d.remaining() == 26.0
    assert Deadline(50.0, cap=30.0).at == 30.0
    assert Deadline(clock() + 5, monotonic=clock).remaining() == pytest.approx(5, abs=1)


def test_an_earlier_view_follows_its_parents_extensions():
    d = Deadline(10.0, cap=40.0, monotonic=lambda: 0.0)
    inner = d.earlier(0.5)
    assert inner.at == 9.5 and inner.remaining() == 9.5
    d.extend(20.0)
    assert inner.at == 19.5
    inner.extend(30.0)  # extending the view extends the parent, margin kept
    assert d.at == 30.5 and inner.at == 30.0
    inner.extend(99.0)
    assert d.at == 40.0, "the parent's cap holds through the view"


def test_as_deadline_wraps_a_number_and_passes_a_deadline_through():
    d = Deadline(3.0)
    assert as_deadline(d) is d and as_deadline(7).at == 7.0


# ---- sharing one call ---------------------------------------------------------------------------------------

def test_concurrent_callers_share_one_call_and_its_answer():
    clock, work = Clock(), Work()
    c = Coalescer(work, monotonic=clock)
    first = Waiter(c, clock() + WAIT)
    work.wait_entered()
    second = Waiter(c, clock() + WAIT)
    wait_until(lambda: c.waiting == 2, "the second scrape waits for the call in flight")
    work.release.set()
    assert first.done().result == second.done().result == "answer 1"
    assert c.started == 1 and len(work.deadlines) == 1 and not c.busy and c.waiting == 0


def test_each_waiter_answers_by_its_own_deadline():
    clock, work = Clock(), Work()
    c = Coalescer(work, monotonic=clock)
    patient = Waiter(c, clock() + WAIT)
    work.wait_entered()
    hasty = Waiter(c, clock() + 0.2).done()  # the call is held back: only its own deadline can end it
    assert isinstance(hasty.error, DeadlineExceeded) and not hasty.error.spaced
    assert patient.is_alive() and not work.release.is_set()
    work.release.set()
    assert patient.done().result == "answer 1" and c.started == 1


def test_an_error_reaches_every_waiter():
    clock, work = Clock(), Work([ValueError("upstream broke")])
    c = Coalescer(work, monotonic=clock)
    a = Waiter(c, clock() + WAIT)
    work.wait_entered()
    (call_deadline,) = work.deadlines
    later = clock() + WAIT + 1
    b = Waiter(c, later)  # a later deadline moves the call's: the sign that b has joined it, not started its own
    wait_until(lambda: call_deadline.at == later, "b joins the call in flight")
    work.release.set()
    assert isinstance(a.done().error, ValueError) and isinstance(b.done().error, ValueError)
    assert c.started == 1


def test_the_longest_waiter_deadline_wins():
    clock, work = Clock(), Work()
    c = Coalescer(work, monotonic=clock)
    now = clock()
    a = Waiter(c, now + 5)
    work.wait_entered()
    (call_deadline,) = work.deadlines
    assert call_deadline.at == now + 5
    b = Waiter(c, now + 8)
    wait_until(lambda: call_deadline.at == now + 8, "a later waiter moves the call's deadline later")
    short = Waiter(c, now + 6)
    wait_until(lambda: c.waiting == 3, "short joins the call")
    assert call_deadline.at == now + 8, "an earlier waiter never shortens the call"
    work.release.set()
    for w in (a, b, short):
        assert w.done().result == "answer 1"
    assert c.started == 1


def test_the_cap_bounds_the_call_whatever_its_waiters_offer():
    clock, work = Clock(), Work()
    c = Coalescer(work, monotonic=clock, cap=3.0)
    a = Waiter(c, clock() + 60)
    work.wait_entered()
    (call_deadline,) = work.deadlines
    assert call_deadline.remaining() <= 3.0
    started_at = call_deadline.at
    b = Waiter(c, clock() + 90)
    wait_until(lambda: c.waiting == 2, "b joins the call")
    assert call_deadline.at == started_at, "the cap counts from the call's start"
    work.release.set()
    a.done(), b.done()


def test_a_call_past_its_deadline_is_never_joined():
    clock, work = Clock(), Work()
    c = Coalescer(work, monotonic=clock)
    first = Waiter(c, clock() + 1.0)
    work.wait_entered()
    clock.advance(2.0)  # the first call's deadline has passed; its work is still running
    second = Waiter(c, clock() + WAIT)
    work.wait_entered()
    assert c.started == 2 and len(work.deadlines) == 2
    assert work.deadlines[0].at < clock() < work.deadlines[1].at, "the new call has the newcomer's deadline"
    assert isinstance(first.done().error, DeadlineExceeded)
    work.release.set()
    assert second.done().result == "answer 2", "the newcomer gets its own call's answer"


def test_a_finished_call_is_not_reused():
    clock, work = Clock(), Work()
    work.hold = False
    c = Coalescer(work, monotonic=clock)
    assert c.run(clock() + WAIT) == "answer 1"
    assert c.run(clock() + WAIT) == "answer 2"
    assert c.started == 2


# ---- the retry gap after a failure --------------------------------------------------------------------------

def failing(gap: float, answers: list, clock: Clock) -> tuple[Coalescer, Work]:
    work = Work(answers, clock)
    work.hold = False
    c = Coalescer(work, monotonic=clock, retry_gap=gap,
                  failed=lambda v: None if v == "good" else "timeout" if v == "slow" else "error")
    return c, work


def test_after_a_failure_a_scrape_that_cannot_wait_out_the_gap_answers_without_a_call():
    clock = Clock()
    c, _work = failing(60.0, ["bad", "good"], clock)
    assert c.run(clock() + WAIT) == "bad"  # a failed answer is still the answer; it starts the gap
    with pytest.raises(DeadlineExceeded) as exc:
        c.run(clock() + WAIT)  # WAIT < 60 s
    assert exc.value.spaced and "less than 60s ago" in str(exc.value)
    assert c.started == 1
    clock.advance(61.0)  # the gap is over
    assert c.run(clock() + WAIT) == "good" and c.started == 2


def test_a_scrape_with_time_to_spare_waits_for_the_gap_then_calls():
    clock = Clock()
    c, work = failing(0.3, ["bad", "good"], clock)
    assert c.run(clock() + WAIT) == "bad"
    assert c.run(clock() + WAIT) == "good" and c.started == 2
    first, second = work.entered_at
    assert second >= first + 0.3, "the second call started only after the gap"


def test_success_starts_no_gap():
    clock = Clock()
    c, _work = failing(60.0, ["good", "good"], clock)
    assert c.run(clock() + WAIT) == "good" and c.run(clock() + WAIT) == "good"
    assert c.started == 2


def test_a_timeout_says_nothing_against_a_scrape_with_twice_its_budget():
    clock = Clock()
    c, work = failing(60.0, ["slow", "good"], clock)
    assert c.run(clock() + 1.0) == "slow"  # this call had a 1 s budget and ran out of it
    with pytest.raises(DeadlineExceeded) as exc:
        c.run(clock() + 1.5)  # not twice that budget: the gap holds
    assert exc.value.spaced and c.started == 1
    assert c.run(clock() + 3.0) == "good", "more than twice the budget: a call at once"
    assert c.started == 2 and work.deadlines[1].remaining() > 1.5


def test_an_ordinary_failure_holds_the_gap_for_every_budget():
    clock = Clock()
    c, _work = failing(60.0, ["bad"], clock)
    assert c.run(clock() + 1.0) == "bad"
    with pytest.raises(DeadlineExceeded):
        c.run(clock() + WAIT)
    assert c.started == 1


def test_an_exception_counts_as_a_failure_for_the_gap():
    clock = Clock()
    c, _work = failing(60.0, [RuntimeError("boom")], clock)
    with pytest.raises(RuntimeError):
        c.run(clock() + WAIT)
    with pytest.raises(DeadlineExceeded) as exc:
        c.run(clock() + WAIT)
    assert exc.value.spaced and c.started == 1


class WhereWork(Work):
    """Work that also notes the thread it ran on."""

    def __init__(self, clock) -> None:
        super().__init__(clock=clock)
        self.threads: list[threading.Thread] = []

    def __call__(self, deadline: Deadline):
        self.threads.append(threading.current_thread())
        return super().__call__(deadline)


def test_a_scrape_that_may_wait_nearly_the_cap_runs_the_call_itself_under_its_own_deadline():
    clock = Clock()
    work = WhereWork(clock)
    c = Coalescer(work, monotonic=clock, cap=60.0)
    now = clock()
    starter = Waiter(c, now + 55)  # 55 s of a 60 s cap: at least INLINE_SHARE of it
    work.wait_entered()
    assert work.threads == [starter]  # on the scrape's own thread: no runner to hand it to and back
    (call_deadline,) = work.deadlines
    assert call_deadline.at == now + 55
    later = Waiter(c, now + 59)
    wait_until(lambda: c.waiting == 2, "a later scrape joins the call")
    assert call_deadline.at == now + 55, "the starter's deadline is final: it answers by it"
    work.release.set()
    assert starter.done().result == later.done().result == "answer 1"
    assert c.started == 1 and not c.busy


def test_a_scrape_with_a_short_deadline_hands_the_call_to_a_runner_that_a_later_waiter_may_keep_going():
    clock = Clock()
    work = WhereWork(clock)
    c = Coalescer(work, monotonic=clock, cap=60.0, name="t")
    now = clock()
    hasty = Waiter(c, now + 1.0)  # far below the cap: its own thread must answer by its deadline
    work.wait_entered()
    (runner,) = work.threads
    assert runner is not hasty and runner.name == "fetch-t"
    (call_deadline,) = work.deadlines
    patient = Waiter(c, now + WAIT)
    wait_until(lambda: call_deadline.at == now + WAIT, "the patient scrape moves the call's deadline later")
    assert isinstance(hasty.done().error, DeadlineExceeded)  # by its own deadline, with the call still running
    assert patient.is_alive()
    work.release.set()
    assert patient.done().result == "answer 1" and c.started == 1


def test_without_a_cap_every_call_goes_to_a_runner():
    clock = Clock()
    work = WhereWork(clock)
    c = Coalescer(work, monotonic=clock)
    starter = Waiter(c, clock() + WAIT)
    work.wait_entered()
    assert work.threads[0] is not starter  # an uncapped call may be moved later without bound
    work.release.set()
    assert starter.done().result == "answer 1"


def test_calls_run_on_threads_kept_from_earlier_calls_and_idle_ones_end():
    runners = Runners(idle=1.0)
    seen: list[tuple[int, str]] = []
    for i in range(3):
        done = threading.Event()

        def job(done=done) -> None:
            seen.append((threading.get_ident(), threading.current_thread().name))
            done.set()

        runners.run(job, f"fetch-t{i}")
        assert done.wait(WAIT)
        end = time.monotonic() + WAIT
        while runners.waiting == 0 and time.monotonic() < end:  # the thread is back, waiting for the next call
            time.sleep(0.001)
    assert len({ident for ident, _ in seen}) == 1  # one thread served all three, in turn
    assert [name for _, name in seen] == ["fetch-t0", "fetch-t1", "fetch-t2"]
    ident = seen[0][0]
    end = time.monotonic() + WAIT
    while any(t.ident == ident for t in threading.enumerate()) and time.monotonic() < end:
        time.sleep(0.05)
    assert not any(t.ident == ident for t in threading.enumerate())  # idle past 1 s: ended


def test_concurrent_calls_each_get_a_thread():
    runners = Runners(idle=0.2)
    release = threading.Event()
    started = threading.Semaphore(0)
    idents: set[int] = set()

    def job() -> None:
        idents.add(threading.get_ident())
        started.release()
        release.wait(10)

    for _ in range(4):
        runners.run(job, "fetch-x")
    for _ in range(4):
        assert started.acquire(timeout=5)
    release.set()
    assert len(idents) == 4


def test_a_runner_waiting_for_its_next_call_holds_nothing_of_the_last():
    """A job holds its call, and the call its answer with every record of a domain: a kept thread lets go of it
    before it waits for the next, the first job too (a Thread keeps its arguments until it ends)."""

    class Answer:
        pass

    runners = Runners(idle=1.0)
    for i in range(3):
        answer = Answer()
        kept = weakref.ref(answer)
        runners.run(lambda answer=answer: None, f"fetch-t{i}")  # the job holds the answer, as a call does
        del answer
        end = time.monotonic() + WAIT
        while runners.waiting == 0 and time.monotonic() < end:  # the thread is back, waiting for the next call
            time.sleep(0.001)
        gc.collect()
        assert kept() is None, f"the thread waiting after call {i} still holds its answer"
