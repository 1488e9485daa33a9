"""Sending one message: a few seconds of retries inside the call, failover down the provider list.

Each provider gets the message from the line its touch's kind asks for (:func:`engine.kinds.sender_line`).
Tenacity retries transient failures briefly (``Retry-After`` honoured, ``sleep`` injectable);
anything longer becomes a stored ``next_attempt_at``. A message moves to the next provider
only when one is blocked, its transient retries are used up or its line is outside its operator hours
(:mod:`engine.operator_hours`) — never on an ambiguous send.

:meth:`Sender.steps` is the same send as a generator that yields a :class:`Wait` where it would
sleep, so the dispatcher can serve the wait off its send threads: a 429 with ``Retry-After: 1``
then costs its message a second, not a send thread's second.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Callable, Generator, Iterator, Protocol

from tenacity import (DoAttempt, DoSleep, RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt,
                      wait_exponential_jitter)

from providers.base import OutgoingMessage, Provider, SendResult
from providers.errors import (
    AmbiguousSendError,
    PermanentContentError,
    PermanentError,
    PermanentRecipientError,
    ProviderBlockedError,
    ProviderError,
    RecipientBlacklistedError,
    TransientError,
)
from providers.ratelimit import Limiter, RateLimiter, parse_rate

from .clock import now
from .kinds import BLACKLIST_REASON, INFORMATIONAL, PROMOTIONAL, sender_line
from .operator_hours import closed_until
from .transitions import Outcome

__all__ = ["BatchSend", "Outcome", "Sender", "Steps", "Wait", "run_steps"]

logger = logging.getLogger("followup.sending")
MAX_INLINE_WAIT = 10.0


@dataclass(frozen=True)
class Wait:
    """A pause a send asks for before its next try: a ``Retry-After`` or a backoff after ``error``."""

    seconds: float
    error: TransientError

    def abandoned(self, why: str) -> "Outcome":
        """The outcome when the next try will not happen here (the worker stops, the lease ran out)."""
        return Outcome("retry", f"{self.error.outcome}: {self.error}; {why}", self.error.provider,
                       retry_after=self.seconds)


Steps = Generator[Wait, None, "Outcome"]


def run_steps(steps: Steps, sleep: Callable[[float], None]) -> "Outcome":
    """Drive a send to its outcome, sleeping through each wait on this thread."""
    try:
        while True:
            sleep(next(steps).seconds)
    except StopIteration as done:
        return done.value


class Sender:
    """Sends through an ordered list of providers per channel, with rate limits shared by threads.

    ``limiters`` maps a provider's name to its limiter (see :func:`engine.ratebuckets.rate_limiters` for
    one shared by workers); by default each provider's ``rate`` is this process's own.
    """

    def __init__(self, providers: dict[str, list[Provider]], *, inline_retries: int = 3,
                 sleep: Callable[[float], None] = time.sleep, limiters: dict[str, Limiter] | None = None):
        self.providers = providers
        self.inline_retries = max(1, inline_retries)
        self.sleep = sleep
        self.limiters: dict[str, Limiter] = limiters if limiters is not None else {
            p.name: RateLimiter(parse_rate(p.settings.get("rate"))) for ps in providers.values() for p in ps}
        # the policy only; each send keeps its own RetryCallState, so one Retrying serves every thread
        self._retrying = Retrying(stop=stop_after_attempt(self.inline_retries), wait=self._wait,
                                  retry=retry_if_exception_type(TransientError), reraise=True)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        hint = getattr(error, "retry_after", None)
        if hint is not None:
            return min(float(hint), MAX_INLINE_WAIT)
        return wait_exponential_jitter(multiplier=0.5, jitter=0.5, max=4.0)(state)  # 0.5–1 s, then 1–1.5 s

    def _attempt(self, provider: Provider, message: OutgoingMessage) -> Generator[Wait, None, SendResult]:
        """One provider's tries: the first without tenacity's bookkeeping, then tenacity's policy."""
        try:
            return self._call(provider, message)
        except TransientError:
            if self.inline_retries <= 1:
                raise
            state = RetryCallState(self._retrying, fn=None, args=(), kwargs={})
            state.set_exception(sys.exc_info())  # type: ignore[arg-type]
        while True:
            if "idle_for" not in self._retrying.statistics:  # tenacity's statistics are per thread, and a
                self._retrying.begin()                         # waiting send resumes on any send thread
            do = self._retrying.iter(state)  # raises the last error once the tries are used up
            if isinstance(do, DoAttempt):
                try:
                    state.set_result(self._call(provider, message))
                except BaseException:
                    state.set_exception(sys.exc_info())  # type: ignore[arg-type]
            elif isinstance(do, DoSleep):
                error = state.outcome.exception()  # type: ignore[union-attr]
                state.prepare_for_next_attempt()
                yield Wait(float(do), error)  # type: ignore[arg-type]
            else:
                return do

    def _call(self, provider: Provider, message: OutgoingMessage) -> SendResult:
        self.limiters[provider.name].acquire(self.sleep)
        return provider.send(message)

    def send(self, message: OutgoingMessage, paused: set[str]) -> Outcome:
        """Send through the first provider that takes it, sleeping between tries; never raises."""
        return run_steps(self.steps(message, paused), self.sleep)

    def steps(self, message: OutgoingMessage, paused: set[str]) -> Steps:
        """:meth:`send` as a generator: it yields a :class:`Wait` where :meth:`send` would sleep."""
        candidates = [p for p in self.providers.get(message.channel, []) if p.name not in paused]
        blocked: dict[str, str] = {}
        last: TransientError | None = None
        if not candidates:
            return Outcome("deferred", f"every {message.channel} provider is paused", blocked=blocked)
        kind = message.metadata.get("kind", PROMOTIONAL)
        closed: list[tuple[datetime, str]] = []  # providers whose line is outside its operator hours now
        for provider in candidates:
            shut = closed_until(provider, message, now())
            if shut is not None:
                closed.append(shut)
                continue
            line = sender_line(provider, kind)
            outgoing = message if line is None else replace(message, sender=line)
            try:
                result = yield from self._attempt(provider, outgoing)
                return Outcome("sent", provider=provider.name, result=result, blocked=blocked)
            except ProviderBlockedError as err:
                blocked[provider.name] = str(err)
                continue
            except TransientError as err:
                last = err
                continue
            except AmbiguousSendError as err:
                return self._reconcile(provider, message, err, blocked)
            except RecipientBlacklistedError as err:  # no other line of the kind would reach them either
                return Outcome("failed", f"recipient: {BLACKLIST_REASON}: {err}", provider.name, suppress=True,
                               promotional_only=kind != INFORMATIONAL, blocked=blocked)
            except PermanentRecipientError as err:
                return Outcome("failed", f"recipient: {err}", provider.name, suppress=True, blocked=blocked)
            except (PermanentContentError, PermanentError) as err:
                return Outcome("failed", f"content: {err}", provider.name, blocked=blocked)
            except ProviderError as err:
                return Outcome("failed", f"{err.outcome}: {err}", provider.name, blocked=blocked)
            except Exception as err:  # an adapter bug: the request may have left, so never resend blindly
                logger.exception("provider %s raised unexpectedly", provider.name)
                return Outcome("unknown", f"provider raised {type(err).__name__}; fate unknown, not resent",
                               provider.name, blocked=blocked)
        if last is not None:
            return Outcome("retry", f"{last.outcome}: {last}", last.provider or candidates[-1].name,
                           retry_after=last.retry_after, blocked=blocked)
        if closed:  # not dropped: it waits for the first line to open
            opens, why = min(closed)
            return Outcome("deferred", why, until=opens, blocked=blocked)
        return Outcome("deferred", "every provider is blocked: " + "; ".join(f"{k}: {v}" for k, v in blocked.items()),
                       blocked=blocked)

    def _reconcile(self, provider: Provider, message: OutgoingMessage, err: AmbiguousSendError,
                   blocked: dict[str, str]) -> Outcome:
        if provider.supports_lookup and not err.looked_up:
            try:
                found = provider.lookup(message.message_id)
            except ProviderError:
                found = None
            if found is not None and found.found:
                return Outcome("sent", f"ambiguous, then found by our id: {err}", provider.name,
                               SendResult(found.provider_message_id), blocked=blocked)
            if found is not None:
                return Outcome("retry", f"ambiguous, and the provider has no record of our id: {err}",
                               provider.name, blocked=blocked)
        return Outcome("unknown", f"ambiguous: {err}; not resent", provider.name, blocked=blocked)

    def lookup_anywhere(self, channel: str, message_id: str) -> tuple[bool | None, str | None, str | None]:
        """After a crash: (found?, provider, provider id). ``None`` when some provider can't be asked."""
        providers = self.providers.get(channel, [])
        for provider in providers:
            if not provider.supports_lookup:
                continue
            try:
                found = provider.lookup(message_id)
            except (ProviderError, NotImplementedError):
                return None, provider.name, None
            if found.found:
                return True, provider.name, found.provider_message_id
        if all(p.supports_lookup for p in providers):
            return False, None, None
        return None, None, None


class Later(Protocol):
    """What waits between tries: :class:`engine.timer.Timer`, or :class:`engine.timer.Immediate` in tests."""

    def later(self, delay: float, fn: Callable[[], None]) -> None: ...

    def wake_all(self) -> None: ...

    def close(self) -> None: ...


class BatchSend:
    """One batch's sends: ``concurrency`` threads of ``pool`` pull from one shared queue of ``outgoing``.

    :meth:`run` yields the outcomes by index: first those settled when the queue is drained, then, if some
    sends were waiting between tries, the rest. A send that must wait (``Retry-After``, a backoff) gives
    its thread back and resumes on a pool thread when ``timer`` calls it back. While the batch is at the
    provider, ``renew(until)`` extends its leases every third of a lease; a message whose lease ran out
    is not sent: a peer may have taken it over, and two sends would be a duplicate.
    """

    def __init__(self, sender: Sender, outgoing: list[OutgoingMessage], paused: frozenset[str], *, pool: Executor,
                 timer: Later, concurrency: int, stopping: threading.Event, lease_until: datetime,
                 lease_seconds: float, renew: Callable[[datetime], None]):
        self.sender, self.outgoing, self.paused = sender, outgoing, paused
        self.pool, self.timer, self.concurrency, self.stopping = pool, timer, concurrency, stopping
        self.lease_seconds, self.renew = lease_seconds, renew
        self.held_until = lease_until  # the leases' end as last renewed
        self.results: list[Outcome | None] = [None] * len(outgoing)
        self.left = len(outgoing)
        self._queue = iter(range(len(outgoing)))
        self._lock = threading.Lock()
        self._all_settled = threading.Event()
        self._done = threading.Event()

    def run(self) -> Iterator[dict[int, Outcome]]:
        keeper = threading.Thread(target=self._keep_leases, daemon=True, name="lease-keeper")
        keeper.start()
        try:
            for future in [self.pool.submit(self._drain) for _ in range(min(self.concurrency, len(self.outgoing)))]:
                future.result()
            with self._lock:
                first = {i: r for i, r in enumerate(self.results) if r is not None}
            yield first
            if len(first) < len(self.results):
                self._all_settled.wait()
                yield {i: r for i, r in enumerate(self.results) if i not in first}  # type: ignore[misc]
        finally:
            self._done.set()
            keeper.join()

    def _keep_leases(self) -> None:
        while not self._done.wait(self.lease_seconds / 3):
            until = now() + timedelta(seconds=self.lease_seconds)
            try:
                self.renew(until)
                self.held_until = until
            except Exception:  # the database is away: sends not yet made wait for the next try
                logger.exception("could not renew the leases of a batch at the provider")

    def _drain(self) -> None:
        while True:
            with self._lock:
                index = next(self._queue, None)
            if index is None:
                return
            if self.stopping.is_set():  # draining: what has not started yet goes back to the queue
                self._settle(index, Outcome("released", "the worker is stopping; not sent, scheduled again"))
            elif now() >= self.held_until:
                self._settle(index, Outcome("retry", "the lease ran out before the provider was called; not sent"))
            else:
                self._advance(index, self.sender.steps(self.outgoing[index], self.paused))

    def _advance(self, index: int, steps: Steps) -> None:
        try:
            wait = next(steps)
        except StopIteration as end:
            self._settle(index, end.value)
        except Exception as err:  # a bug past the sender's own guard: the request may have left
            logger.exception("sending message %s failed unexpectedly", self.outgoing[index].message_id)
            self._settle(index, Outcome("unknown", f"{type(err).__name__} while sending; fate unknown, not resent"))
        else:
            self.timer.later(wait.seconds, lambda: self.pool.submit(self._resume, index, steps, wait))

    def _resume(self, index: int, steps: Steps, wait: Wait) -> None:
        if self.stopping.is_set() or now() >= self.held_until:
            steps.close()
            self._settle(index, wait.abandoned("the worker is stopping" if self.stopping.is_set()
                                               else "the lease ran out before the next try; not sent again here"))
        else:
            self._advance(index, steps)

    def _settle(self, index: int, outcome: Outcome) -> None:
        with self._lock:
            self.results[index] = outcome
            self.left -= 1
            if not self.left:
                self._all_settled.set()
