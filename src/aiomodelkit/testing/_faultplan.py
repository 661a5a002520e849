"""What :class:`~aiomodelkit.testing.FaultProxy` keeps per rule, and does per request.

A :class:`RuleState` counts a rule's matches and decides whether it fires (``times``,
``nth``, ``probability``, and a :class:`~._throttle.Throttle`'s budget); a
:class:`FaultPlan` flattens the faults of the rule that fired into what the proxy and its
relay loop (``_faultwire``) need: a delay, an answer of its own, a cut, a stall...
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._faults import (
    CorruptBytes,
    DelayFirstByte,
    ReplaceObject,
    ResetConnection,
    ServerError,
    Stall,
    Truncate,
)
from ._throttle import THROTTLE_STATUS, Throttle, ThrottleState

if TYPE_CHECKING:
    from ._faults import Api, ProxyFault, ProxyRule

__all__ = ["FaultPlan", "RuleState"]


@dataclass
class RuleState:
    """What the proxy remembers about one rule (touched under the proxy's lock).

    Attributes:
        throttle: the budget of the rule's :class:`~._throttle.Throttle`, if it has one.
    """

    rule: ProxyRule
    matched: int = 0
    fired: int = 0
    rng: random.Random = field(init=False)
    throttle: ThrottleState | None = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.rule.seed)
        throttles = [fault for fault in self.rule.faults if isinstance(fault, Throttle)]
        self.throttle = ThrottleState(throttles[0]) if throttles else None

    def fires(self) -> bool:
        """Count one match and decide whether the rule fires on it.

        A throttled rule fires only above its budget; when it does not fire, the caller
        admits the request into the budget (:meth:`ThrottleState.admit`).
        """
        rule = self.rule
        self.matched += 1
        fire = True
        if rule.nth is not None:
            wanted = {rule.nth} if isinstance(rule.nth, int) else set(rule.nth)
            fire = self.matched in wanted
        if rule.probability is not None:
            # Always draw, so that the sequence does not depend on the other conditions.
            fire = self.rng.random() < rule.probability and fire
        if self.throttle is not None:
            fire = self.throttle.over() and fire  # always asked: the bucket refills
        if rule.times is not None and self.fired >= rule.times:
            fire = False
        if fire:
            self.fired += 1
        return fire


@dataclass
class FaultPlan:
    """The faults of one request, flattened into what the proxy's relay loop needs."""

    delay: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    cut_after: int | None = None
    reset: bool = False
    stall: Stall | None = None
    corruptions: tuple[CorruptBytes, ...] = ()
    replace: ReplaceObject | None = None

    @classmethod
    def of(cls, faults: tuple[ProxyFault, ...], api: Api) -> FaultPlan:
        plan = cls()
        for fault in faults:
            match fault:
                case DelayFirstByte(seconds=seconds):
                    plan.delay += seconds
                case ServerError(status=status):
                    plan.status = status
                case Throttle(retry_after=retry_after):
                    plan.status, plan.retry_after = THROTTLE_STATUS[api], retry_after
                case Truncate(after=after):
                    plan.cut_after, plan.reset = after, False
                case ResetConnection(after=after):
                    plan.cut_after, plan.reset = after, True
                case Stall():
                    plan.stall = fault
                case CorruptBytes():
                    plan.corruptions += (fault,)
                case ReplaceObject():
                    plan.replace = fault
        return plan

    def corrupt(self, sent: int, chunk: bytes) -> bytes:
        """``chunk`` (at body offset ``sent``) with the corrupted bytes flipped."""
        if not self.corruptions:
            return chunk
        data = bytearray(chunk)
        for corruption in self.corruptions:
            start = max(corruption.at, sent)
            end = min(corruption.at + corruption.count, sent + len(chunk))
            for position in range(start, end):
                data[position - sent] ^= 0xFF
        return bytes(data)
