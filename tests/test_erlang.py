"""Erlang C and Erlang A against published figures and against exact (rational or 60-digit)
computations made here independently of kpis.erlang's recursions."""

from __future__ import annotations

import math
from decimal import Decimal, getcontext
from fractions import Fraction

import pytest

from kpis.erlang import (
    agents_a,
    agents_c,
    asa_c,
    erlang_a,
    erlang_b,
    erlang_c,
    service_level_c,
)


def exact_c(n: int, a: Fraction) -> Fraction:
    """Erlang C by its closed form, in exact rational arithmetic."""
    term = Fraction(1)
    head = Fraction(0)
    for k in range(n):
        head += term
        term = term * a / (k + 1)
    top = term * n / (n - a)  # a^n / n! * n / (n - a)
    return top / (head + top)


@pytest.mark.parametrize(
    ("n", "a"),
    [(1, Fraction(1, 2)), (2, Fraction(3, 2)), (14, Fraction(10)), (30, Fraction(251, 10)),
     (60, Fraction(55)), (130, Fraction(123))],
)  # fmt: skip
def test_erlang_c_equals_the_closed_form(n: int, a: Fraction) -> None:
    assert erlang_c(n, float(a)) == pytest.approx(float(exact_c(n, a)), abs=1e-9)


def test_erlang_c_published_figures() -> None:
    # pyworkforce's example: 100 contacts in 30 min, 3 min AHT (10 erlangs), 80 % in 20 s:
    # 14 agents, service level 0.888, P(wait) 0.174, occupancy 0.714
    assert agents_c(10.0, 180.0, 20.0, 0.8) == 14
    assert round(service_level_c(14, 10.0, 180.0, 19.8), 3) == 0.888
    assert round(erlang_c(14, 10.0), 3) == 0.174
    # call-center-tools' tests: P(wait) at 123 / 132 and at 12,345 / 12,421 (a large load
    # computed without overflow), overload
    assert round(erlang_c(132, 123.0), 4) == 0.3211
    assert round(erlang_c(12421, 12345.0), 4) == 0.3812
    assert erlang_c(900, 1000.0) == 1.0


def test_erlang_c_edges() -> None:
    assert erlang_c(5, 0.0) == 0.0 and service_level_c(5, 0.0, 300, 20) == 1.0
    assert agents_c(0.0, 300, 20, 0.8) == 0
    assert erlang_c(10, 10.0) == 1.0 and service_level_c(10, 10.0, 300, 20) == 0.0
    assert asa_c(10, 12.0, 300) == math.inf
    assert erlang_b(0, 3.0) == 1.0
    # ASA = C aht / (n - a): 14 agents, 10 erlangs, 180 s
    assert asa_c(14, 10.0, 180.0) == pytest.approx(float(exact_c(14, Fraction(10))) * 45)
    # a very large load needs a little more than its erlangs
    n = agents_c(20_000.0, 300.0, 20.0, 0.8)
    assert 20_000 < n < 20_200 and service_level_c(n - 1, 20_000.0, 300.0, 20.0) < 0.8
    with pytest.raises(ValueError):
        agents_c(10.0, 180.0, 20.0, 1.0)


# --- Erlang A ------------------------------------------------------------------------------------


def exact_a(n: int, load: Fraction, aht: int, patience: int, t: int) -> tuple[float, ...]:
    """P(wait), P(abandon) and P(answered within t) of M/M/n+M, computed independently: the
    stationary law summed in rationals to 1e-40, and each queue position's chance of being
    answered in time from the hypoexponential law with distinct rates, in 60-digit decimals."""
    getcontext().prec = 60
    mu, theta = Fraction(1, aht), Fraction(1, patience)
    lam = load * mu
    probs = [Fraction(1)]
    k = 0
    while True:
        k += 1
        rate = k * mu if k <= n else n * mu + (k - n) * theta
        probs.append(probs[-1] * lam / rate)
        if k > n and probs[-1] < Fraction(1, 10**40):
            break
    z = sum(probs)
    pi = [p / z for p in probs]
    wait = sum(pi[n:])
    abandon = sum((k - n) * p for k, p in enumerate(pi) if k > n) * theta / lam
    served = sum(pi[:n])
    for j, p in enumerate(pi[n:]):
        if p < Fraction(1, 10**30):
            break
        # with i ahead: answered-or-moved-up rate r_i, total exit rate q_i = r_i + theta
        r = [n * mu + i * theta for i in range(j + 1)]
        q = [x + theta for x in r]
        reach = Decimal(1)
        for x, y in zip(r, q, strict=True):
            reach *= Decimal(x.numerator * y.denominator) / Decimal(x.denominator * y.numerator)
        qd = [Decimal(x.numerator) / Decimal(x.denominator) for x in q]
        cdf = Decimal(1)
        for i, qi in enumerate(qd):
            c = Decimal(1)
            for m, qm in enumerate(qd):
                if m != i:
                    c *= qm / (qm - qi)
            cdf -= c * (-qi * t).exp()
        served += p * Fraction(reach * cdf)
    return float(wait), float(abandon), float(served)


@pytest.mark.parametrize(
    ("n", "load", "aht", "patience", "t"),
    [(3, Fraction(5, 2), 60, 120, 20), (5, Fraction(6), 180, 60, 30),
     (10, Fraction(8), 300, 600, 20), (2, Fraction(4), 100, 50, 10)],
)  # fmt: skip
def test_erlang_a_equals_an_independent_computation(
    n: int, load: Fraction, aht: int, patience: int, t: int
) -> None:
    got = erlang_a(n, float(load), aht, patience, t)
    wait, abandon, sl = exact_a(n, load, aht, patience, t)
    assert got.wait == pytest.approx(wait, abs=1e-6)
    assert got.abandon == pytest.approx(abandon, abs=1e-6)
    assert got.service_level == pytest.approx(sl, abs=1e-6)


def test_erlang_a_tends_to_erlang_c_and_needs_no_more_agents() -> None:
    for n, load in ((14, 10.0), (60, 55.0)):
        a = erlang_a(n, load, 180.0, 1e9, 20.0)  # customers who (almost) never give up
        assert a.wait == pytest.approx(erlang_c(n, load), abs=1e-6)
        assert a.service_level == pytest.approx(service_level_c(n, load, 180.0, 20.0), abs=1e-6)
    # abandonment relieves the queue: as many agents or fewer; overload stays finite
    assert agents_a(10.0, 180.0, 120.0, 20.0, 0.8) <= agents_c(10.0, 180.0, 20.0, 0.8)
    over = erlang_a(5, 20.0, 180.0, 60.0, 20.0)  # four times the capacity
    assert 0.7 < over.abandon < 1.0 and 0.0 < over.service_level < 0.3
    assert erlang_a(5, 0.0, 180.0, 60.0, 20.0).service_level == 1.0
    assert agents_a(0.0, 180.0, 60.0, 20.0, 0.8) == 0


def test_loads_no_queue_has_are_refused_at_once_not_computed() -> None:
    """A hostile interval (a million offered contacts) ends as an answer or a ValueError in a
    bounded time; the report then says None (kpis.intervals)."""
    for call in (
        lambda: agents_c(1e6, 300.0, 20.0, 0.8),
        lambda: erlang_a(10, 1e6, 300.0, 1e6, 20.0),  # patient customers, a huge queue
        lambda: agents_a(2e5, 300.0, 240.0, 20.0, 0.8),
    ):
        with pytest.raises(ValueError):
            call()
    # a month's threshold: everyone answered is answered within it (the early stop at work)
    month = erlang_a(50, 45.0, 300.0, 240.0, 86_400.0 * 30)
    assert month.service_level == pytest.approx(1.0 - month.abandon, abs=1e-6)
