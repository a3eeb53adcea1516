"""Erlang C and Erlang A: the agents a queue needs for its service-level goal (pure, no I/O).

Erlang C (M/M/n): Poisson arrivals, exponential handle times, ``n`` agents, customers who
never give up. Erlang A (M/M/n+M, Palm): the same with exponential patience, so abandonment
relieves the queue; with a measured patience it is the better model where customers abandon
(Garnett, Mandelbaum and Reiman 2002; Mandelbaum and Zeltyn 2007).

Units: ``load`` in erlangs (arrival rate x mean handle time), ``aht`` and ``t`` (the
service-level threshold) and ``patience`` in seconds. Service level is the share of arrivals
answered within ``t``; under Erlang A an abandoned customer is not answered, which is the
report's definition too (answered within the threshold over answered plus abandoned).

Everything is computed with ratios and recursions that neither overflow nor lose precision for
large loads (tens of thousands of erlangs); cost is O(n) for Erlang C and O(n + K * J) for
Erlang A, K steps of uniformization and J queue positions (both bounded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_AGENTS = 100_000
"""The search for required agents stops here (a load that needs more is not a queue)."""


def erlang_b(n: int, load: float) -> float:
    """Blocking probability of ``n`` servers under ``load`` erlangs (the stable recursion
    B(k) = a B(k-1) / (k + a B(k-1)))."""
    if n < 0:
        raise ValueError("n must be >= 0")
    b = 1.0
    for k in range(1, n + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c(n: int, load: float) -> float:
    """Probability that an arrival waits (Erlang C). 0 without load; 1 at or above capacity."""
    if load <= 0:
        return 0.0
    if n <= load:
        return 1.0
    b = erlang_b(n, load)
    return n * b / (n - load * (1.0 - b))


def service_level_c(n: int, load: float, aht: float, t: float) -> float:
    """Share answered within ``t`` seconds (Erlang C): 1 - C exp(-(n - a) t / aht)."""
    if load <= 0:
        return 1.0
    if n <= load:
        return 0.0
    return 1.0 - erlang_c(n, load) * math.exp(-(n - load) * t / aht)


def asa_c(n: int, load: float, aht: float) -> float:
    """Mean wait over all arrivals (Erlang C): C aht / (n - a); inf at or above capacity."""
    if load <= 0:
        return 0.0
    if n <= load:
        return math.inf
    return erlang_c(n, load) * aht / (n - load)


def agents_c(load: float, aht: float, t: float, goal: float) -> int:
    """The fewest agents whose Erlang C service level reaches ``goal`` (0 without load).

    Erlang B is carried from one candidate to the next (B(n) from B(n-1)), so the search costs
    O(n) in all, not O(n) per candidate."""
    if load <= 0:
        return 0
    if not 0 < goal < 1:
        raise ValueError("goal must be in (0, 1)")
    if load >= MAX_AGENTS:  # refused before any work: a hostile count, not a queue
        raise ValueError(f"more than {MAX_AGENTS} agents needed")
    n = max(1, math.floor(load) + 1)
    b = erlang_b(n, load)
    while True:
        c = n * b / (n - load * (1.0 - b))  # Erlang C from Erlang B
        if 1.0 - c * math.exp(-(n - load) * t / aht) >= goal:
            return n
        n += 1
        if n > MAX_AGENTS:
            raise ValueError(f"more than {MAX_AGENTS} agents needed")
        b = load * b / (n + load * b)


@dataclass(frozen=True, slots=True)
class ErlangA:
    """Erlang A figures for ``n`` agents."""

    wait: float  # P(an arrival waits)
    abandon: float  # P(an arrival abandons)
    service_level: float  # P(answered within t)


MAX_STEPS = 2_000_000
"""Uniformization steps at most (the threshold times the fastest rate, about)."""
MAX_WAITING = 100_000
"""Queue positions Erlang A follows at most; a load that queues more is not a queue."""
MAX_WORK = 50_000_000
"""Uniformization steps times queue positions at most: the cost of one service level."""

TAIL_EPS = 1e-16
"""Queue positions are summed until a term adds less than this (relative) to the total."""


def erlang_a(n: int, load: float, aht: float, patience: float, t: float) -> ErlangA:
    """Erlang A (M/M/n+M) for ``n`` agents: arrival rate load/aht, service rate 1/aht, mean
    patience ``patience`` (seconds, > 0), threshold ``t``.

    The stationary law of the number in system is a birth-death chain: a^k/k! up to n, then
    each further one multiplied by lambda / (n mu + i theta). An arrival that finds ``j``
    waiting ahead of it is answered once j + 1 places ahead of it clear (each at rate
    n mu + i theta, i ahead) before its own patience runs out (rate theta); the probability
    that happens within ``t`` is found for every j at once by uniformizing that chain.
    """
    if patience <= 0 or aht <= 0 or n < 0:
        raise ValueError("aht and patience must be > 0, n >= 0")
    if load <= 0:
        return ErlangA(0.0, 0.0, 1.0)
    mu, theta = 1.0 / aht, 1.0 / patience
    lam = load * mu
    b = erlang_b(n, load)  # P(n busy) among states 0..n, normalized to 1
    # w_j = prod_{i=1..j} lam / (n mu + i theta): the chain beyond n, relative to state n
    weights = [1.0]
    total = 1.0
    j = 0
    while True:
        j += 1
        w = weights[-1] * lam / (n * mu + j * theta)
        weights.append(w)
        total += w
        if w < TAIL_EPS * total and n * mu + j * theta > lam:
            break
        if j > MAX_WAITING:
            raise ValueError(f"more than {MAX_WAITING} waiting: not a queue Erlang A can model")
    tail = total - 1.0  # sum_{j>=1} w_j
    norm = 1.0 + b * tail  # states 0..n weigh 1, states n+1.. weigh b * tail
    # P(arrival finds j waiting) for j >= 0: state n + j
    found = [b * w / norm for w in weights]
    wait = sum(found)
    queued = sum(i * p for i, p in enumerate(found))  # E[number waiting]
    abandon = theta * queued / lam
    # positions holding less than 1e-13 of the mass in all cannot move the result at 1e-6:
    # they are left out of the (quadratic) uniformization
    cut = len(found)
    rest = 0.0
    while cut > 1 and rest + found[cut - 1] < 1e-13:
        cut -= 1
        rest += found[cut]
    served_in_t = _served_within(found[:cut], n * mu, theta, t)
    return ErlangA(wait, abandon, (1.0 - b) / norm + served_in_t)


def _served_within(found: list[float], nmu: float, theta: float, t: float) -> float:
    """sum_j found[j] * P(answered within t | j ahead), by uniformization of the tagged
    customer's chain: with i ahead it moves up at rate nmu + i theta, leaves at rate theta."""
    if t <= 0 or not found:
        return 0.0
    top = len(found) - 1
    rate = nmu + (top + 1) * theta  # the largest exit rate: the uniformization constant
    x = rate * t
    k_max = int(x + 12 * math.sqrt(x) + 40)
    if k_max > MAX_STEPS or k_max * (top + 1) > MAX_WORK:
        raise ValueError("threshold too long for Erlang A (a deferred channel is not a queue)")
    up = [(nmu + i * theta) / rate for i in range(top + 1)]
    stay = [1.0 - u - theta / rate for u in up]
    p = list(found)  # mass with i ahead (i = index); it only ever moves to lower indices
    served = 0.0
    out = 0.0
    log_pk = -x  # Poisson(k; x) in logs: a large x neither overflows nor underflows
    poisson_seen = 0.0
    for k in range(k_max + 1):
        if k:
            log_pk += math.log(x / k)
            # one step, in place from the head: new[i] = p[i] stay[i] + p[i+1] up[i+1]
            served += p[0] * up[0]
            for i in range(top):
                p[i] = p[i] * stay[i] + p[i + 1] * up[i + 1]
            p[top] *= stay[top]
        w = math.exp(log_pk)
        poisson_seen += w
        out += w * served
        if sum(p) < 1e-13:  # nothing left to be answered: every later step adds `served`
            break
    # the Poisson mass not visited counts with the last served mass
    return out + max(0.0, 1.0 - poisson_seen) * served


def agents_a(load: float, aht: float, patience: float, t: float, goal: float) -> int:
    """The fewest agents whose Erlang A service level reaches ``goal`` (0 without load).

    At a queue's loads Erlang A needs as many agents as Erlang C or a few fewer (abandonment
    relieves the queue): the search starts from Erlang C's answer (and would step up if not)."""
    if load <= 0:
        return 0
    if not 0 < goal < 1:
        raise ValueError("goal must be in (0, 1)")
    n = agents_c(load, aht, t, goal)
    while erlang_a(n, load, aht, patience, t).service_level < goal:  # not expected; safe
        n += 1
        if n > MAX_AGENTS:
            raise ValueError(f"more than {MAX_AGENTS} agents needed")
    while n > 1 and erlang_a(n - 1, load, aht, patience, t).service_level >= goal:
        n -= 1
    return n
