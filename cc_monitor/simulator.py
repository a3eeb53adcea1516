"""A seeded, realistic event log of a multi-channel contact centre (the embedded default).

What it models, so that every KPI and rule has something to measure:

* arrivals following a daily profile (quieter at night and on weekends), per channel;
* a voice IVR (flow ``main``) with self-service, a cards branch that asks for the account number
  twice (a KS S 1006 defect), a loans branch four levels deep (misconfigured: the limit is 3), a
  direct "agent" option, and a few agent requests the IVR fails to route; a ``vip`` flow whose
  greeting is longer than its target;
* FIFO queues served by a limited number of agents each, customer patience and abandonment;
* talk, hold, transfers to a second queue, after-contact work;
* chats that start with a bot, e-mails and messages answered hours later;
* cases that span contacts and channels, reopens within and after 7 days, a few chats that never
  end (orphans);
* callbacks requested from long queues, some for a reserved slot, some breaching 24 h;
* an incident: the voice trunk is down for 30 minutes on the first day at 14:00, so calls in
  progress are disconnected by the system and voice goes silent.

The output is sorted by event time and fully determined by the configuration and seed.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

# Hourly arrival weights (local time), a typical bank's inbound curve.
HOURLY = (
    0.4, 0.25, 0.2, 0.2, 0.3, 0.6, 1.5, 3.5, 6.5, 8.5, 9.0, 8.5,
    7.0, 7.5, 8.5, 8.5, 8.0, 7.0, 5.5, 4.0, 3.0, 2.2, 1.5, 0.9,
)  # fmt: skip
CHANNEL_MIX = (
    ("voice", 0.58),
    ("chat", 0.22),
    ("email", 0.10),
    ("sms", 0.04),
    ("social", 0.03),
    ("video", 0.03),
)
# Mean handle time (talk + hold + ACW, seconds) per queue, used for staffing and service.
QUEUES = {
    "billing": ("voice", 330.0),
    "cards": ("voice", 420.0),
    "loans": ("voice", 600.0),
    "general": ("voice", 360.0),
    "chat": ("chat", 540.0),
    "email": ("email", 420.0),
    "messaging": ("sms", 240.0),
    "video": ("video", 600.0),
}
# Contact reasons (wrap-up codes) per queue: weights for resolved contacts, then unresolved
# ones (disputes and faults leave more cases open: the cause analysis has something to find).
REASONS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "billing": (("bill_inquiry", 0.45, 0.2), ("payment", 0.25, 0.15), ("fee_dispute", 0.2, 0.5),
                ("address_change", 0.1, 0.15)),
    "cards": (("lost_card", 0.35, 0.2), ("card_activation", 0.3, 0.15),
              ("limit_change", 0.2, 0.15), ("fraud_report", 0.15, 0.5)),
    "loans": (("loan_inquiry", 0.5, 0.25), ("repayment", 0.3, 0.25), ("rate_complaint", 0.2, 0.5)),
    "general": (("general_inquiry", 0.6, 0.4), ("account_info", 0.4, 0.6)),
    "chat": (("app_login", 0.4, 0.5), ("bill_inquiry", 0.3, 0.2), ("general_inquiry", 0.3, 0.3)),
    "email": (("statement_request", 0.5, 0.3), ("fee_dispute", 0.3, 0.5),
              ("address_change", 0.2, 0.2)),
    "messaging": (("app_login", 0.5, 0.6), ("general_inquiry", 0.5, 0.4)),
    "video": (("loan_inquiry", 0.6, 0.4), ("account_info", 0.4, 0.6)),
}  # fmt: skip
COMPLAINT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "billing": ("billing_error", "fees"), "cards": ("card_service", "fraud_handling"),
    "loans": ("loan_terms", "fees"), "general": ("service_quality", "agent_conduct"),
    "chat": ("service_quality", "app_problem"), "email": ("slow_reply", "billing_error"),
    "messaging": ("app_problem", "slow_reply"), "video": ("service_quality", "loan_terms"),
}  # fmt: skip
INCIDENT_START = time(14, 0)
INCIDENT_MINUTES = 30


@dataclass(frozen=True)
class SimConfig:
    seed: int = 7
    start: date = date(2026, 11, 2)
    days: int = 1
    contacts_per_day: int = 6000
    tz: tzinfo = UTC
    tenant: str = "bank"
    incident: bool = True
    staffing: float = 1.0  # scales every queue's agents
    shifts: bool = True  # agents work shifts with breaks (False: every agent around the clock)
    shortfall: bool = True  # day one: absences on billing at 10:00, a loans team meeting
    bad_lines_per_day: int = 0  # sprinkle malformed / invalid / duplicate lines (for demos)


# Score weights of the simulated surveys: [smooth contact, rough contact (transfer or repeat)].
SURVEY_CSAT = {False: (0.04, 0.05, 0.11, 0.3, 0.5), True: (0.12, 0.15, 0.2, 0.3, 0.23)}
SURVEY_CES = {  # 1..7, higher is easier; above 4 agrees it was easy
    False: (0.02, 0.02, 0.04, 0.06, 0.16, 0.3, 0.4),
    True: (0.08, 0.1, 0.12, 0.16, 0.2, 0.19, 0.15),
}
SURVEY_NPS = {  # 0..10
    False: (0.01, 0.01, 0.01, 0.01, 0.02, 0.03, 0.05, 0.1, 0.16, 0.25, 0.35),
    True: (0.04, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.14, 0.16, 0.15, 0.15),
}


@dataclass(order=True)
class _Pending:
    ts: float
    seq: int
    event: dict[str, Any] = field(compare=False)


# Shifts: nine hours, starting between 07:00 and 14:00 so that the agents on shift follow the
# arrival curve (a greedy roster, below), plus a night shift from 23:00 on real-time queues;
# every agent has two 15-minute breaks and a 30-minute lunch (staggered between neighbours)
# and logs in and out (agent.state).
SHIFT_HOURS = 9.0
DAY_STARTS = (7, 8, 9, 10, 11, 12, 13, 14)
NIGHT_START = 23
BREAKS = ((2.0, 15), (4.0, 30), (6.5, 15))  # (hours into the shift, minutes)
REAL_TIME_QUEUES = frozenset(q for q, (ch, _) in QUEUES.items() if ch in ("voice", "chat", "video"))
HEADCOUNT = 2.4
"""Agents employed per erlang of the peak hour's load: about 1.4 on shift at the peak (a
service level near 80 % in 20 s) once shifts, breaks and the curve are allowed for."""


def roster(headcount: int, real_time: bool) -> list[int]:
    """Each agent's shift start hour: on real-time queues the last agent (two from six agents)
    works nights; the others start where the arrival curve is least covered so far."""
    nights = (2 if headcount >= 6 else 1) if real_time and headcount >= 3 else 0
    day = headcount - nights
    need = [w / max(HOURLY) * day * 0.85 for w in HOURLY]
    cover = [0.0] * 24
    starts = []
    for _ in range(day):
        best = max(DAY_STARTS, key=lambda h: sum(max(0.0, need[(h + k) % 24] - cover[(h + k) % 24])
                                                 for k in range(int(SHIFT_HOURS))))  # fmt: skip
        starts.append(best)
        for k in range(int(SHIFT_HOURS)):
            cover[(best + k) % 24] += 1
    return sorted(starts) + [NIGHT_START] * nights


class _Pool:
    """Agents of one queue: a heap of (free at, agent index); FIFO service in arrival order.
    An agent takes a contact only inside its shift and outside its breaks (and absences),
    with the whole handle time before the break or shift end when it fits in one stretch."""

    def __init__(self, name: str, size: int, sim: Simulator | None = None) -> None:
        self.name = name
        self.free: list[tuple[float, int]] = [(0.0, i) for i in range(size)]
        heapq.heapify(self.free)
        self.sim = sim
        self.size = size
        self.roster = roster(size, name in REAL_TIME_QUEUES)
        self._windows: dict[tuple[int, int], list[tuple[float, float]]] = {}

    def windows(self, idx: int, day: int) -> list[tuple[float, float]]:
        """Agent ``idx``'s working stretches of the shift that starts on local day ``day``."""
        key = (idx, day)
        found = self._windows.get(key)
        if found is None:
            found = self._windows[key] = (
                self.sim.windows(self.name, idx, day)
                if self.sim is not None
                else [(-math.inf, math.inf)]
            )
        return found

    def _fit(self, idx: int, start: float, handle: float) -> float:
        if self.sim is None:
            return start
        day0 = self.sim.day_of(start)
        for day in range(day0 - 1, day0 + 3):
            for s, e in self.windows(idx, day):
                if e <= start:
                    continue
                t = max(start, s)
                if t + min(handle, e - s) <= e:
                    return t
        return math.inf

    def next_free(self, t: float = 0.0, handle: float = 0.0) -> float:
        """When the first agent can start a contact of ``handle`` seconds arriving at ``t``
        (that agent is then at the top of the heap, for :meth:`take`)."""
        while True:
            free_at, idx = self.free[0]
            if free_at == math.inf:
                return math.inf
            start = max(t, free_at)
            fit = self._fit(idx, start, handle)
            if fit == start:
                return start
            heapq.heapreplace(self.free, (fit, idx))

    def on_shift_from(self, t: float) -> tuple[float, int]:
        """The earliest time from ``t`` that an agent is working, and which agent (the one
        whose stretch started first, then the lowest index)."""
        if self.sim is None:
            return t, 0
        day0 = self.sim.day_of(t)
        best: tuple[float, float, int] | None = None
        for idx in range(self.size):
            for day in range(day0 - 1, day0 + 3):
                for s, e in self.windows(idx, day):
                    if e > t:
                        cand = (max(s, t), s, idx)
                        if best is None or cand < best:
                            best = cand
                        break
        return (best[0], best[2]) if best is not None else (t, 0)

    def working(self, t: float) -> list[int]:
        """The agents whose shift has them working at ``t`` (not on a break)."""
        if self.sim is None:
            return list(range(self.size))
        day = self.sim.day_of(t)
        days = (day - 1, day)
        return [i for i in range(self.size)
                if any(s <= t < e for d in days for s, e in self.windows(i, d))]  # fmt: skip

    def take(self, start: float, busy_until: float) -> str:
        _, idx = heapq.heapreplace(self.free, (busy_until, self.free[0][1]))
        return f"{self.name}-a{idx:03d}"


def agent_ids(cfg: SimConfig) -> list[str]:
    """Every agent id a simulation of ``cfg`` can name (``<queue>-a<NNN>``), for a directory
    of display names (the live demo's)."""
    return [f"{q}-a{i:03d}" for q, pool in Simulator(cfg).pools.items() for i in range(pool.size)]


SURNAMES = ("김", "이", "박", "최", "정", "강", "조",
            "윤", "장", "임", "한", "오", "서", "신")  # fmt: skip
GIVEN = ("민준", "서연", "도윤", "하은", "시우", "지유", "주원",
         "서윤", "예준", "지아", "하준", "수아", "지호", "채원",
         "준서", "지민", "은우", "다은", "현우", "소율")  # fmt: skip


def display_name(i: int) -> str:
    """A made-up Korean display name, the ``i``-th of a fixed sequence (no real person)."""
    n, g = len(SURNAMES), len(GIVEN)
    again = i // (n * g)  # past every pair: the same names numbered
    return SURNAMES[i % n] + GIVEN[(i // n) % g] + (f" {again + 1}" if again else "")


class Simulator:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        # surveys draw from their own generator: the rest of a seed's log stays what it was
        self.survey_rng = random.Random(cfg.seed * 7919 + 13)
        self.reason_rng = random.Random(cfg.seed * 104_729 + 17)  # so do the reason codes
        self.complaint_rng = random.Random(cfg.seed * 7_727 + 29)  # and the complaints
        self.offer_rng = random.Random(cfg.seed * 6_151 + 31)  # and the offers let ring
        # answers after the simulated days are not in (yet): the log ends where it would
        last = cfg.start + timedelta(days=cfg.days)
        self.survey_until = datetime.combine(last, time(0), cfg.tz).timestamp()
        self.pending: list[_Pending] = []
        self.seq = 0
        self.contact_seq = 0
        self._reopens: dict[str, int] = {}  # reopens per case, for unique note ids
        self.pools = self._staff()
        self.incident: tuple[float, float] | None = None
        if cfg.incident:
            start = datetime.combine(cfg.start, INCIDENT_START, cfg.tz).timestamp()
            self.incident = (start, start + INCIDENT_MINUTES * 60)

    # --- infrastructure --------------------------------------------------------------------

    def _staff(self) -> dict[str, _Pool]:
        peak_share = max(HOURLY) / sum(HOURLY)
        per_channel = dict(CHANNEL_MIX)
        voice_queue_share = {"billing": 0.38, "cards": 0.24, "loans": 0.16, "general": 0.22}
        pools = {}
        for q, (channel, aht) in QUEUES.items():
            share = per_channel[channel] * voice_queue_share.get(q, 1.0)
            if q == "messaging":
                share = per_channel["sms"] + per_channel["social"]
            if channel == "voice":
                share *= 0.7  # about 30% of calls end in the IVR
            peak_per_hour = self.cfg.contacts_per_day * share * peak_share
            erlangs = peak_per_hour * aht / 3600.0
            if channel in ("email", "sms"):
                erlangs *= 0.35  # worked as backlog, not in real time
            if self.cfg.shifts:  # agents employed, so that about the peak's need is on shift
                size = math.ceil(erlangs * HEADCOUNT * self.cfg.staffing)
                size = max(4 if q in REAL_TIME_QUEUES else 2, size)
            else:
                size = max(1, math.ceil(erlangs * 0.92 * self.cfg.staffing))
            pools[q] = _Pool(q, size, self if self.cfg.shifts else None)
        return pools

    def day_of(self, ts: float) -> int:
        return datetime.fromtimestamp(ts, self.cfg.tz).date().toordinal()

    def _at(self, day: int, hours: float) -> float:
        midnight = datetime.combine(date.fromordinal(day), time(0), self.cfg.tz).timestamp()
        return midnight + hours * 3600.0

    def shift(
        self, queue: str, idx: int, day: int
    ) -> tuple[float, float, list[tuple[float, float]]]:
        """Agent ``idx`` of ``queue`` on local day ``day``: shift start, end, and its breaks
        and absences (start, end), in order."""
        hour = self.pools[queue].roster[idx]
        start = self._at(day, hour)
        end = start + SHIFT_HOURS * 3600.0
        stagger = (idx % 4) * 35 * 60.0  # breaks of neighbours never overlap
        off = [(start + h * 3600.0 + stagger, start + h * 3600.0 + stagger + m * 60.0)
               for h, m in BREAKS]  # fmt: skip
        off.extend(self._absences(queue, idx, day, start, end))
        merged: list[tuple[float, float]] = []
        for a, b in sorted(off):  # a break within an absence is part of it
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return start, end, merged

    def _absences(
        self, queue: str, idx: int, day: int, start: float, end: float
    ) -> list[tuple[float, float]]:
        """The staffing-shortfall scenario, on the first day: half of billing's agents on
        shift are called away 10:00-11:30 (a staffing gap while calls queue); every loans
        agent is in a team meeting 16:00-16:20 (calls wait with no agent available)."""
        if not self.cfg.shortfall or day != self.cfg.start.toordinal():
            return []
        out = []
        if queue == "billing" and idx % 2 == 0:
            out.append((self._at(day, 10.0), self._at(day, 11.5)))
        if queue == "loans":
            out.append((self._at(day, 16.0), self._at(day, 16 + 1 / 3)))
        return [(a, b) for a, b in out if start < b and a < end]

    def windows(self, queue: str, idx: int, day: int) -> list[tuple[float, float]]:
        start, end, off = self.shift(queue, idx, day)
        out = []
        t = start
        for a, b in off:
            if a > t:
                out.append((t, min(a, end)))
            t = max(t, b)
        if t < end:
            out.append((t, end))
        return out

    def _iso(self, ts: float) -> str:
        dt = datetime.fromtimestamp(ts, self.cfg.tz)
        return dt.isoformat(timespec="milliseconds")

    def _emit(self, ts: float, etype: str, c: dict[str, Any], **fields: Any) -> None:
        c["n"] += 1
        ev: dict[str, Any] = {
            "event_id": f"{c['contact_id']}-{c['n']}",
            "type": etype,
            "ts": ts,
            "channel": c["channel"],
            "contact_id": c["contact_id"],
        }
        if c["case_id"] != c["contact_id"]:
            ev["case_id"] = c["case_id"]
        ev["tenant"] = self.cfg.tenant
        if c.get("queue"):
            ev["queue"] = c["queue"]
        if c.get("agent") and etype not in ("contact.started",):
            ev["agent_id"] = c["agent"]
        ev["customer_id"] = c["customer_id"]
        for k, v in fields.items():
            if v is not None:
                ev[k] = v
        self.seq += 1
        heapq.heappush(self.pending, _Pending(ts, self.seq, ev))

    def _new_contact(
        self, channel: str, case_id: str | None = None, customer: str | None = None
    ) -> dict[str, Any]:
        self.contact_seq += 1
        cid = f"c{self.contact_seq:07d}"
        return {
            "contact_id": cid,
            "case_id": case_id or cid,
            "channel": channel,
            "customer_id": customer or f"cu{self.rng.randrange(16**6):06x}",
            "n": 0,
        }

    def _in_incident(self, ts: float) -> bool:
        return self.incident is not None and self.incident[0] <= ts < self.incident[1]

    def _cut(self, start: float, end: float) -> float | None:
        """The time a voice contact active over the incident start is disconnected, if it is."""
        if self.incident is None:
            return None
        at = self.incident[0]
        if start < at < end:
            return at + self.rng.uniform(0.2, 5.0)
        return None

    # --- channels ----------------------------------------------------------------------------

    def _serve(
        self, q: str, entered: float, patience: float, handle: float
    ) -> tuple[float, str] | None:
        """(answer time, agent) if the customer is answered before giving up, else None."""
        pool = self.pools[q]
        start = pool.next_free(entered, handle)
        if start - entered > patience:
            return None
        agent = pool.take(start, start + handle)
        return start + self.rng.uniform(1.0, 4.0), agent

    def _voice(self, t: float, case: dict[str, Any] | None = None) -> None:
        rng = self.rng
        c = self._new_contact("voice", *(case or {}).get("ids", (None, None)))
        vip = rng.random() < 0.05
        flow = "vip" if vip else "main"
        self._emit(t, "contact.started", c, direction="inbound", initiation="inbound")
        t += 0.5
        greeting = rng.uniform(18, 26) if vip else rng.uniform(6, 11)
        self._emit(t, "ivr.entered", c, flow=flow, greeting_seconds=round(greeting, 1))
        t += greeting
        self._emit(t, "ivr.menu", c, flow=flow, menu="main", level=1)
        t += rng.uniform(4, 12)
        r = rng.random()
        queue = None
        agent_requested = False
        if r < 0.25:  # balance enquiry, self-served
            self._emit(t, "ivr.menu", c, flow=flow, menu="balance", level=2)
            t += rng.uniform(3, 8)
            self._emit(t, "ivr.input", c, flow=flow, menu="balance", requested="account_number")
            t += rng.uniform(20, 60)
            if self._voice_cut(c, t - 60, t):
                return
            self._emit(t, "ivr.exited", c, flow=flow, outcome="self_served")
            self._emit(t + 1, "contact.ended", c, ended_by="customer")
            return
        if r < 0.45:
            self._emit(t, "ivr.menu", c, flow=flow, menu="cards", level=2)
            t += rng.uniform(3, 6)
            self._emit(t, "ivr.input", c, flow=flow, menu="cards", requested="account_number")
            t += rng.uniform(8, 15)
            self._emit(t, "ivr.menu", c, flow=flow, menu="cards.lost", level=3)
            t += rng.uniform(3, 6)
            if rng.random() < 0.3:  # the defect: asked again
                self._emit(
                    t, "ivr.input", c, flow=flow, menu="cards.lost", requested="account_number"
                )
                t += rng.uniform(8, 15)
            queue = "cards"
        elif r < 0.60:
            self._emit(t, "ivr.menu", c, flow=flow, menu="loans", level=2)
            t += rng.uniform(4, 8)
            self._emit(t, "ivr.menu", c, flow=flow, menu="loans.mortgage", level=3)
            t += rng.uniform(4, 8)
            self._emit(t, "ivr.menu", c, flow=flow, menu="loans.mortgage.rates", level=4)
            t += rng.uniform(10, 25)
            queue = "loans"
        elif r < 0.88:
            self._emit(t, "ivr.menu", c, flow=flow, menu="billing", level=2)
            t += rng.uniform(4, 10)
            queue = "billing"
        elif r < 0.97:
            agent_requested = True
            queue = "general"
        else:
            t += rng.uniform(2, 20)
            if self._voice_cut(c, t - 20, t):
                return
            if rng.random() < 0.3:  # asked for an agent, the IVR could not route it
                self._emit(t, "ivr.exited", c, flow=flow, outcome="hang_up", agent_requested=True)
            else:
                self._emit(t, "ivr.exited", c, flow=flow, outcome="hang_up")
            self._emit(t + 0.5, "contact.ended", c, ended_by="customer")
            return
        if self._voice_cut(c, t - 40, t):
            return
        self._emit(t, "ivr.exited", c, flow=flow, outcome="queue", agent_requested=agent_requested)
        self._queue_and_talk(c, t + 0.3, queue, case)

    def _voice_cut(self, c: dict[str, Any], start: float, end: float) -> bool:
        cut = self._cut(start, end)
        if cut is None:
            return False
        self._emit(cut, "contact.ended", c, ended_by="system", reason="trunk_down")
        return True

    def _queue_and_talk(
        self, c: dict[str, Any], t: float, queue: str, case: dict[str, Any] | None
    ) -> None:
        rng = self.rng
        c["queue"] = queue
        self._emit(t, "queue.entered", c)
        channel = c["channel"]
        aht = QUEUES[queue][1]
        talk = rng.lognormvariate(math.log(aht * 0.72), 0.5)
        hold = rng.uniform(20, 120) if rng.random() < 0.3 else 0.0
        acw = rng.uniform(20, 90)
        patience = rng.expovariate(1 / (240.0 if channel == "voice" else 420.0))
        pool = self.pools[queue]
        expected_wait = max(0.0, pool.next_free(t) - t)
        if channel == "voice" and expected_wait > 180 and rng.random() < 0.25:
            self._callback_request(c, t + rng.uniform(20, 60))
            return
        served = self._serve(queue, t, patience, talk + hold + acw)
        if served is None:
            gone = t + patience
            if channel == "voice" and self._voice_cut(c, t, gone):
                return
            self._emit(gone, "queue.abandoned", c)
            self._emit(gone + 0.2, "contact.ended", c, ended_by="customer")
            return
        answer, agent = served
        if channel == "voice" and self._voice_cut(c, t, answer):
            return
        c["waited"] = answer - t
        if pool.size > 1 and self.offer_rng.random() < 0.04 and answer - 16 > t:
            # ring no answer: first offered to another agent, who let it ring for 15 s
            other = int(agent.rsplit("-a", 1)[1]) + 1 + self.offer_rng.randrange(pool.size - 1)
            c["agent"] = f"{queue}-a{other % pool.size:03d}"
            self._emit(answer - 16.0, "agent.offered", c)
        c["agent"] = agent
        self._emit(answer - 1.0, "agent.offered", c)
        self._emit(answer, "agent.connected", c)
        end = answer + talk + hold
        cut = self._cut(answer, end) if channel == "voice" else None
        if cut is not None:
            self._emit(cut, "contact.ended", c, ended_by="system", reason="trunk_down")
            self._emit(cut + acw, "wrapup.ended", c, resolved=False)
            return
        if hold:
            h0 = answer + talk * 0.4
            self._emit(h0, "hold.started", c)
            self._emit(h0 + hold, "hold.ended", c)
        if channel == "chat":
            self._emit(answer + rng.uniform(3, 15), "agent.message", c, sender="human")
            self._emit(answer + rng.uniform(20, 60), "customer.message", c)
        if rng.random() < 0.08 and queue != "general":  # transfer to the general queue
            self._emit(end, "contact.transferred", c, to_queue="general")
            c["transferred"] = True
            self._emit(end + acw, "wrapup.ended", c, resolved=False)
            c2_talk = rng.lognormvariate(math.log(250), 0.4)
            c["queue"] = "general"
            c["agent"] = None
            t2 = end + 1.0
            self._emit(t2, "queue.entered", c)
            served2 = self._serve("general", t2, 900.0, c2_talk + acw)
            if served2 is None:
                self._emit(t2 + 900, "queue.abandoned", c)
                self._emit(t2 + 900.2, "contact.ended", c, ended_by="customer")
                return
            answer, agent = served2
            c["agent"] = agent
            self._emit(answer, "agent.connected", c)
            end = answer + c2_talk
        resolved = rng.random() < 0.78
        self._emit(end, "contact.ended", c, ended_by=rng.choice(("customer", "agent")))
        self._emit(end + acw, "wrapup.ended", c, resolved=resolved if channel == "voice" else None,
                   reasons=self._reasons(c["queue"], resolved))  # fmt: skip
        self._after(c, end + acw, resolved, case)

    def _reasons(self, queue: str, resolved: bool) -> list[str] | None:
        """The wrap-up codes an agent picks: one by the queue's weights, sometimes two; none
        on one contact in twenty (the agent skipped the code)."""
        rng = self.reason_rng
        choices = REASONS.get(queue)
        if choices is None or rng.random() < 0.05:
            return None
        codes = [code for code, _, _ in choices]
        weights = [ok if resolved else not_ok for _, ok, not_ok in choices]
        first = rng.choices(codes, weights)[0]
        if rng.random() < 0.1:
            second = rng.choices(codes, weights)[0]
            if second != first:
                return [first, second]
        return [first]

    def _after(
        self, c: dict[str, Any], t: float, resolved: bool, case: dict[str, Any] | None
    ) -> None:
        """Case follow-up: explicit resolution for text channels, repeats, reopens."""
        rng = self.rng
        ids = (c["case_id"], c["customer_id"])
        if c["channel"] != "voice" and resolved:
            self._emit(t + 1, "case.resolved", c)
        attempt = (case or {}).get("attempt", 0)
        if not resolved and attempt < 2 and rng.random() < 0.45:
            later = t + rng.uniform(3600, 2 * 86400)
            channel = "voice" if rng.random() < 0.6 else "chat"
            self._schedule_contact(later, channel, {"ids": ids, "attempt": attempt + 1})
        elif resolved and rng.random() < 0.05:
            early = rng.random() < 0.7
            gap = rng.uniform(3600, 6 * 86400) if early else rng.uniform(8 * 86400, 10 * 86400)
            self._schedule_contact(t + gap, c["channel"], {"ids": ids, "attempt": 9, "reopen": 1})
        self._survey(c, t, bool(c.get("transferred")) or attempt > 0)
        self._complaint(c, t, attempt > 0)

    def _complaint(self, c: dict[str, Any], t: float, repeat: bool) -> None:
        """About one handled contact in seventy complains, more after a long wait, a transfer
        or a repeat contact: acknowledged within hours, closed within days (a few past the
        14-day target), some escalated, compensated or reopened; a few recorded without the
        remedy asked for or a severity. Its own generator: the rest of the log is unchanged."""
        rng = self.complaint_rng
        p = 0.008 + 0.03 * bool(c.get("transferred")) + 0.03 * repeat
        p += 0.03 * (c.get("waited", 0.0) > 300)
        if rng.random() >= p:
            return
        slow = c.get("waited", 0.0) > 300
        category = "wait_time" if slow else rng.choice(COMPLAINT_CATEGORIES.get(
            c["queue"], ("service_quality",)))  # fmt: skip
        opened = t + rng.uniform(60, 3600)
        fields: dict[str, Any] = {"complaint_id": f"K-{c['contact_id']}", "category": category}
        if rng.random() < 0.92:
            fields["severity"] = rng.choices(("low", "medium", "high", "critical"),
                                             (0.4, 0.4, 0.15, 0.05))[0]  # fmt: skip
        if rng.random() < 0.88:
            fields["remedy"] = rng.choice(("refund", "apology", "explanation", "fee_waiver",
                                           "callback"))  # fmt: skip
        until = self.survey_until  # the log's end: later steps are not in (yet)
        steps: list[tuple[float, str, dict[str, Any]]] = [(opened, "complaint.opened", fields)]
        ack = opened + rng.lognormvariate(math.log(3 * 3600), 0.8)
        closed = opened + rng.lognormvariate(math.log(3 * 86400), 0.9)
        cid = {"complaint_id": fields["complaint_id"]}
        if rng.random() < 0.95:
            steps.append(
                (min(ack, closed - 1), "complaint.updated", {**cid, "status": "investigating"})
            )
        if rng.random() < 0.15:
            steps.append(((min(ack, closed) + closed) / 2, "complaint.escalated", cid))
        outcome = rng.choices(("upheld", "partly_upheld", "not_upheld", "withdrawn"),
                              (0.35, 0.25, 0.3, 0.1))[0]  # fmt: skip
        if outcome != "not_upheld" and rng.random() < 0.4:
            size = rng.choice(("small", "medium", "large"))
            steps.append((closed - 60, "complaint.compensated", {**cid, "amount_class": size}))
        steps.append((closed, "complaint.closed", {**cid, "outcome": outcome}))
        if rng.random() < 0.05:
            steps.append((closed + rng.uniform(86400, 10 * 86400), "complaint.reopened", cid))
        for at, etype, f in steps:
            if at < until:
                self._emit(at, etype, c, **f)

    def _survey(self, c: dict[str, Any], t: float, rough: bool) -> None:
        """A fifth of handled customers answer the post-contact survey, most within the hour,
        some days later: CSAT always, CES and NPS on some; worse after a transfer or when the
        customer had to come back (a repeat contact)."""
        rng = self.survey_rng
        if rng.random() >= 0.2:
            return
        r = rng.random()
        at = t + (
            rng.uniform(300, 3600)
            if r < 0.7
            else rng.uniform(3600, 86400)
            if r < 0.95
            else rng.uniform(86400, 4 * 86400)
        )
        if at + 2 >= self.survey_until:
            return
        self._emit(at, "survey.answered", c, survey="csat", scale=5,
                   score=rng.choices((1, 2, 3, 4, 5), SURVEY_CSAT[rough])[0])  # fmt: skip
        if rng.random() < 0.6:
            self._emit(at + 1, "survey.answered", c, survey="ces", scale=7,
                       score=rng.choices(range(1, 8), SURVEY_CES[rough])[0])  # fmt: skip
        if rng.random() < 0.3:
            self._emit(at + 2, "survey.answered", c, survey="nps", scale=10,
                       score=rng.choices(range(11), SURVEY_NPS[rough])[0])  # fmt: skip

    def _schedule_contact(self, t: float, channel: str, case: dict[str, Any]) -> None:
        self.seq += 1
        heapq.heappush(self.later, (t, self.seq, channel, case))

    def _callback_request(self, c: dict[str, Any], t: float) -> None:
        rng = self.rng
        cb_id = f"cb-{c['contact_id']}"
        reserved = None
        if rng.random() < 0.3:
            day = datetime.fromtimestamp(t, self.cfg.tz).date() + timedelta(days=1)
            slot = datetime.combine(day, time(rng.choice((10, 11, 15, 16)), 0), self.cfg.tz)
            reserved = slot.timestamp()
        self._emit(
            t, "callback.requested", c, callback_id=cb_id,
            reserved_for=self._iso(reserved) if reserved is not None else None,
        )  # fmt: skip
        self._emit(t + 2, "contact.ended", c, ended_by="customer", reason="callback_requested")
        r = rng.random()
        if reserved is not None:
            when = reserved + (rng.uniform(-300, 300) if r < 0.9 else rng.uniform(1800, 5400))
        elif r < 0.85:
            when = t + rng.uniform(600, 20 * 3600)
        elif r < 0.93:
            when = t + rng.uniform(25 * 3600, 30 * 3600)  # breaches 24 h
        else:
            return  # never called back: breaches at its deadline
        out = self._new_contact("voice", c["case_id"], c["customer_id"])
        out["queue"] = c["queue"]
        self._emit(when, "contact.started", out, direction="outbound", initiation="callback",
                   callback_id=cb_id)  # fmt: skip
        reached = rng.random() < 0.85
        self._emit(when + 20, "callback.attempted", out, callback_id=cb_id,
                   outcome="reached" if reached else "no_answer")  # fmt: skip
        if not reached:
            self._emit(when + 21, "contact.ended", out, ended_by="system", reason="no_answer")
            return
        pool = self.pools[c["queue"]]
        # an agent on shift makes the call (the pool's bookings are for contacts arriving now;
        # a call planned for later is made besides them)
        working = pool.working(when + 20) or list(range(pool.size))
        out["agent"] = f"{c['queue']}-a{working[rng.randrange(len(working))]:03d}"
        self._emit(when + 20, "agent.connected", out)
        talk = rng.uniform(120, 400)
        self._emit(when + 20 + talk, "contact.ended", out, ended_by="agent")
        self._emit(when + 20 + talk + 45, "wrapup.ended", out, resolved=True)

    def _chat(self, t: float, case: dict[str, Any] | None = None) -> None:
        rng = self.rng
        c = self._new_contact("chat", *(case or {}).get("ids", (None, None)))
        self._emit(t, "contact.started", c, direction="inbound", initiation="inbound")
        self._emit(t + 1, "agent.message", c, sender="bot")
        self._emit(t + rng.uniform(8, 20), "customer.message", c)
        t += 25
        self._emit(t, "agent.message", c, sender="bot")
        if rng.random() < 0.25:  # the bot answered it
            self._emit(t + rng.uniform(10, 40), "contact.ended", c, ended_by="customer")
            return
        if rng.random() < 0.01:  # the customer walks away and the session is never closed
            self._emit(t + 30, "customer.message", c)
            return
        self._queue_and_talk(c, t + rng.uniform(5, 30), "chat", case)

    def _deferred(self, t: float, channel: str, case: dict[str, Any] | None = None) -> None:
        """E-mail, SMS and social: answered from a backlog, hours later."""
        rng = self.rng
        c = self._new_contact(channel, *(case or {}).get("ids", (None, None)))
        queue = "email" if channel == "email" else "messaging"
        c["queue"] = queue
        self._emit(t, "contact.started", c, direction="inbound", initiation="inbound")
        self._emit(t + 0.5, "queue.entered", c)
        median = 5 * 3600.0 if channel == "email" else 1800.0
        first = t + rng.lognormvariate(math.log(median), 0.8)
        handle = rng.lognormvariate(math.log(QUEUES[queue][1] * 0.8), 0.4)
        # a backlog is worked by whoever is on shift: the first agent working from then on
        # (not the pool's queue of live contacts, which a reply hours ahead would block)
        pool = self.pools[queue]
        first, idx = pool.on_shift_from(first)
        agent = f"{queue}-a{idx:03d}"
        c["agent"] = agent
        self._emit(first, "agent.connected", c)
        reply = first + handle * 0.8
        self._emit(reply, "agent.message", c, sender="human")
        self._emit(reply + 1, "contact.ended", c, ended_by="agent")
        resolved = rng.random() < 0.7
        self._emit(first + handle, "wrapup.ended", c, reasons=self._reasons(queue, resolved))
        self._after(c, first + handle, resolved, case)

    def _video(self, t: float, case: dict[str, Any] | None = None) -> None:
        c = self._new_contact("video", *(case or {}).get("ids", (None, None)))
        self._emit(t, "contact.started", c, direction="inbound", initiation="inbound")
        self._queue_and_talk(c, t + 2, "video", case)

    def _start(self, t: float, channel: str, case: dict[str, Any] | None = None) -> None:
        if case is not None and case.get("reopen"):
            # The customer reopens a resolved case, then contacts the centre about it.
            case_id, customer = case["ids"]
            # each reopen of a case is its own note, with ids of its own
            k = self._reopens[case_id] = self._reopens.get(case_id, 0) + 1
            note = {"contact_id": f"{case_id}-reopen{k}", "case_id": case_id,
                    "channel": channel, "customer_id": customer, "n": 0}  # fmt: skip
            self._emit(t, "case.reopened", note)
            t += 60
        if channel == "voice":
            if self._in_incident(t):
                return  # the trunk is down: no call gets in
            self._voice(t, case)
        elif channel == "chat":
            self._chat(t, case)
        elif channel == "video":
            self._video(t, case)
        else:
            self._deferred(t, channel, case)

    # --- the run -------------------------------------------------------------------------------

    def _arrivals(self, day: date) -> list[tuple[float, str]]:
        rng = self.rng
        weekend = day.weekday() >= 5
        n = round(self.cfg.contacts_per_day * (0.55 if weekend else 1.0))
        start = datetime.combine(day, time(0), self.cfg.tz).timestamp()
        hours = list(range(24))
        channels = [c for c, _ in CHANNEL_MIX]
        weights = [w for _, w in CHANNEL_MIX]
        out = []
        for h in rng.choices(hours, weights=HOURLY, k=n):
            out.append((start + h * 3600 + rng.random() * 3600, rng.choices(channels, weights)[0]))
        out.sort()
        return out

    def _incident_events(self, day: date) -> None:
        if self.incident is None or day != self.cfg.start:
            return
        sysc = {"contact_id": "sys-trunk", "case_id": "sys-trunk", "channel": "voice",
                "customer_id": None, "n": 0}  # fmt: skip
        down, up = self.incident
        self._emit(down, "system.status", sysc, component="trunk", status="down")
        self._emit(up, "system.status", sysc, component="trunk", status="up")

    def _drain_until(self, limit: float) -> Iterator[dict[str, Any]]:
        while self.pending and self.pending[0].ts < limit:
            ev = heapq.heappop(self.pending).event
            ev["ts"] = self._iso(ev["ts"])
            if ev.get("customer_id") is None:
                ev.pop("customer_id", None)
            yield ev

    def _shifts(self) -> None:
        """Agent states for the simulated days: each agent logs in to its queue at its shift's
        start, is away on its breaks and absences, and logs out at the end (without shifts,
        every agent logs in when the simulation starts and out when its days end)."""
        first = self.cfg.start.toordinal()
        for queue, pool in self.pools.items():
            channel = QUEUES[queue][0]
            for idx in range(pool.size):
                agent = f"{queue}-a{idx:03d}"
                who = {"contact_id": f"agent:{agent}", "case_id": f"agent:{agent}",
                       "channel": channel, "customer_id": None, "n": 0, "queue": queue}  # fmt: skip
                if not self.cfg.shifts:
                    start = datetime.combine(self.cfg.start, time(0), self.cfg.tz).timestamp()
                    self._emit(start, "agent.state", who, agent_id=agent, state="available")
                    self._emit(self.survey_until, "agent.state", who, agent_id=agent,
                               state="offline")  # fmt: skip
                    continue
                begin = datetime.combine(self.cfg.start, time(0), self.cfg.tz).timestamp()
                for day in range(first - 1, first + self.cfg.days):
                    start, end, off = self.shift(queue, idx, day)
                    if start >= self.survey_until or end <= begin:
                        continue
                    start = max(start, begin)  # a night shift under way when the log starts
                    self._emit(start, "agent.state", who, agent_id=agent, state="available")
                    for a, b in off:
                        if start <= a < end:
                            minutes = (b - a) / 60  # a break, the lunch, or an absence
                            reason = ("break" if minutes <= 20 else "lunch" if minutes <= 35
                                      else "absence")  # fmt: skip
                            self._emit(a, "agent.state", who, agent_id=agent, state="away",
                                       reason=reason)  # fmt: skip
                            if b < end:
                                self._emit(b, "agent.state", who, agent_id=agent,
                                           state="available")  # fmt: skip
                    self._emit(end, "agent.state", who, agent_id=agent, state="offline")

    def events(self) -> Iterator[dict[str, Any]]:
        """All events, in event-time order."""
        self.later: list[tuple[float, int, str, dict[str, Any]]] = []
        self._shifts()
        for d in range(self.cfg.days):
            day = self.cfg.start + timedelta(days=d)
            self._incident_events(day)
            end_of_day = datetime.combine(day + timedelta(days=1), time(0), self.cfg.tz).timestamp()
            for t, channel in self._arrivals(day):
                while self.later and self.later[0][0] <= t:
                    lt, _, lch, case = heapq.heappop(self.later)
                    if lt < end_of_day:
                        yield from self._drain_until(lt)
                        self._start(lt, lch, case)
                yield from self._drain_until(t)
                self._start(t, channel)
            while self.later and self.later[0][0] < end_of_day:
                lt, _, lch, case = heapq.heappop(self.later)
                yield from self._drain_until(lt)
                self._start(lt, lch, case)
        # Follow-ups due after the last day are not simulated; what is pending is emitted.
        yield from self._drain_until(math.inf)


def simulate(cfg: SimConfig) -> Iterator[dict[str, Any]]:
    """The simulated event log for ``cfg`` (dicts in the canonical event format)."""
    return Simulator(cfg).events()


def lines(cfg: SimConfig) -> Iterator[bytes]:
    """The log as JSON Lines; with ``bad_lines_per_day``, realistic garbage is mixed in."""
    import orjson

    noise = random.Random(cfg.seed + 1)
    per_event = cfg.bad_lines_per_day / max(cfg.contacts_per_day * 10, 1)
    for ev in simulate(cfg):
        line = orjson.dumps(ev)
        yield line
        if per_event and noise.random() < per_event:
            yield from _bad_lines(noise, ev)


def _bad_lines(rng: random.Random, sample: dict[str, Any]) -> list[bytes]:
    """One of what real feeds contain, each rejected with a different reason."""
    import orjson

    eid = sample["event_id"]
    naive = dict(sample, event_id=eid + "-naive", ts=sample["ts"][:23])
    unknown = dict(sample, event_id=eid + "-x", type="contact.teleported")
    missing = {k: v for k, v in sample.items() if k != "contact_id"}
    missing["event_id"] = eid + "-m"
    choices = [
        b'{"event_id": "' + eid.encode() + b'-broken", "type": "contact.started", "ts": ',
        orjson.dumps(naive),
        orjson.dumps(unknown),
        orjson.dumps(missing),
        orjson.dumps(sample),  # the same event again
    ]
    return [choices[rng.randrange(len(choices))]]
