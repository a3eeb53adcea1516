"""Alert evaluation on event time: a pure state machine over the engine's observations.

:class:`AlertLogic` is a :class:`kpis.interfaces.KpiSink` (it sees every count and gauge the
engine emits) and a tick listener (:meth:`kpis.engine.Engine.on_tick`): at each evaluation time
``B`` it closes the interval ending at ``B``, evaluates every rule over its window and moves
each (rule, group) through its lifecycle: inactive, pending (condition true, ``for`` not yet
elapsed), firing, resolved. Because ticks come in the engine's processing order, a replay of a
log gives the same alerts, with the same start and end times, as the live system did.

Alerts are per rule and group (flow / menu, queue, channel, component), never per contact; an
alert carries a bounded sample of contact ids as evidence. The state is plain data
(:meth:`snapshot` / :meth:`restore`), so a restarted worker does not fire a firing alert again.
"""

from __future__ import annotations

import hashlib
import operator
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import chain
from typing import Any, Literal, Protocol, cast

import orjson

from alerts.rules import (
    QUEUE_LABELS,
    BaseRule,
    Results,
    RulesConfig,
    StaffingGapRule,
)
from kpis.catalogue import label_names
from kpis.interfaces import Labels
from kpis.rules.agents import STAFFED
from kpis.targets import Targets, agents_needed

QueueView = Callable[[float], dict[Labels, tuple[int, float]]]
StaffView = Callable[[], dict[tuple[Labels, str], int] | None]
"""Agents per (queue labels, state) at the tick being evaluated; None while not all known."""
STAFFING_SERIES = ("queued", "handle_seconds", "handle_seconds:sum")


@dataclass
class Alert:
    rule: str
    fingerprint: str
    labels: dict[str, str]
    severity: str
    summary: str
    runbook_url: str
    starts_at: float
    ends_at: float | None = None
    value: float = 0.0
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AlertEvent:
    status: Literal["firing", "resolved"]
    alert: Alert


class AlertSink(Protocol):
    def alert(self, event: AlertEvent) -> None: ...


def fingerprint(labels: dict[str, str]) -> str:
    """Stable id of an alert: a hash of its labels (name, severity, group)."""
    return hashlib.sha256(orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class _Format(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "-"


def _summary(template: str, labels: dict[str, str], value: float) -> str:
    """The alert text. Templates are checked when rules load (alerts.rules); this never
    raises all the same: an alert must not be lost to its wording."""
    try:
        return template.format_map(_Format(labels, value=value))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return template


class AlertLogic:
    def __init__(
        self,
        config: RulesConfig,
        sink: AlertSink,
        queue_view: QueueView | None = None,
        targets: Targets | None = None,
        staff_view: StaffView | None = None,
    ) -> None:
        """``targets``: the engine's queue targets, for rules whose threshold is the queue's
        own (``threshold_target``); without them those rules use their ``threshold``."""
        self.config = config
        self.sink = sink
        self.queue_view = queue_view
        self.staff_view = staff_view
        self.targets = targets
        interval = config.evaluation_interval_seconds
        self._rules = [(n, r) for n, r in config.rules.items() if r.enabled]
        # engine series -> (rule, group getter, slot: 0 numerator or count, 1 denominator)
        self._routes: dict[str, list[tuple[str, Callable[[Labels], Labels], int]]] = {}
        # per windowed rule, what its evaluation needs, worked out once instead of every tick
        self._plans: dict[str, _Plan] = {}
        for name, rule in self._rules:
            for series, slot in rule.reads():
                self._route(series, name, rule.groups(), slot)
            window = rule.window(interval)
            if window is not None:
                length, per_window = window
                by = rule.groups()
                channel_at = by.index("channel") if "channel" in by else None
                keep = rule.channels if channel_at is not None else None
                targeted = rule.takes_target() and targets is not None
                self._plans[name] = _Plan(rule, length, per_window, channel_at, keep, targeted)
        # staffing rules: per rule, the window's (queued, handled parts, handle seconds) per
        # queue, one entry per interval (see _StaffWindow)
        self._staffing = {
            n: w for n, r in self._rules if (w := r.staffing_window(interval)) is not None
        }
        self._staff_windows: dict[str, dict[Labels, _StaffWindow]] = {n: {} for n in self._staffing}
        self._staff_tick: tuple[dict[Labels, dict[str, int]] | None] | None = None
        staffing = STAFFING_SERIES if self._staffing else ()
        self.series = frozenset([*self._routes, "system_status", *staffing])
        """The engine series this logic reads (a :class:`kpis.interfaces.FanOut` filters on it)."""
        self._windows: dict[str, dict[Labels, _Window]] = {n: {} for n, _ in self._rules}
        self._status: dict[Labels, float] = {}
        self._active: dict[tuple[str, Labels], Alert] = {}
        self._since: dict[tuple[str, Labels], float] = {}  # pending: condition true since
        self._clear: dict[tuple[str, Labels], float] = {}  # firing: condition clear since

    def _route(self, series: str, rule: str, by: tuple[str, ...], slot: int) -> None:
        names = label_names(series)
        missing = [b for b in by if b not in names]
        if missing:
            raise ValueError(f"rule {rule}: series {series} has no label {', '.join(missing)}")
        positions = [names.index(b) for b in by]
        getter: Callable[[Labels], Labels]
        if len(positions) == 1:
            only = positions[0]

            def getter(labels: Labels) -> Labels:
                return (labels[only],)
        else:
            getter = cast(Callable[[Labels], Labels], operator.itemgetter(*positions))
        self._routes.setdefault(series, []).append((rule, getter, slot))

    # --- the KpiSink side -----------------------------------------------------------------

    def count(self, name: str, labels: Labels, ts: float, evidence: str | None = None) -> None:
        self.add(name, labels, 1.0)
        if evidence is not None:
            self.note(name, labels, evidence)

    def add(self, name: str, labels: Labels, n: float) -> None:
        """``n`` observations of series ``name`` in the interval being filled."""
        if self._staffing and name in STAFFING_SERIES:
            slot = STAFFING_SERIES.index(name)
            for rule, length in self._staffing.items():
                queues = self._staff_windows[rule]
                sw = queues.get(labels)
                if sw is None:
                    sw = queues[labels] = _StaffWindow(length)
                sw.cur[slot] += n
        routes = self._routes.get(name)
        if routes is None:
            return
        for rule, getter, slot in routes:
            group = getter(labels)
            windows = self._windows[rule]
            w = windows.get(group)
            if w is None:
                w = windows[group] = _Window(self._plans[rule].length, self.config.evidence_limit)
            if slot:
                w.cur1 += n
            else:
                w.cur0 += n

    def note(self, name: str, labels: Labels, evidence: str) -> None:
        """An id behind an observation of ``name`` (after :meth:`add` counted it)."""
        for rule, getter, _ in self._routes.get(name, ()):
            w = self._windows[rule].get(getter(labels))
            if w is not None and w.evidence is not None and evidence not in w.evidence:
                w.evidence.append(evidence)

    def observe(self, name: str, labels: Labels, ts: float, value: float) -> None:
        if self._staffing and name == "handle_seconds":
            self.add(name, labels, 1.0)
            self.add("handle_seconds:sum", labels, value)

    def gauge(self, name: str, labels: Labels, ts: float, value: float) -> None:
        if name == "system_status":
            self._status[labels] = value

    # --- evaluation -----------------------------------------------------------------------

    def on_tick(self, at: float) -> None:
        """Evaluate every rule at event time ``at`` (a multiple of the evaluation interval)."""
        self._staff_tick = None
        # groups pending or firing, per rule, taken once: a rule's lifecycle below changes only
        # its own entries, so the later rules' sets stay exact
        held: dict[str, set[Labels]] = {}
        for r, g in chain(self._active, self._since):
            found = held.get(r)
            if found is None:
                held[r] = {g}
            else:
                found.add(g)
        tick = _Tick(self, at)
        for name, rule in self._rules:
            results = rule.judge(name, tick, name in held)
            if results is None:
                continue  # nothing decided: no group changes state
            # only groups whose condition holds or that are pending or firing can change state
            groups = {g for g, r in results.items() if r[0]}
            also = held.get(name)
            if also is not None:
                groups |= also
            elif not groups:
                continue  # no condition holds, nothing pending or firing: nothing changes
            for group in sorted(groups):
                cond, value, names = results.get(group, (False, 0.0, ()))
                self._lifecycle(name, rule, group, names, cond, value, at)

    def steady(self) -> bool:
        """Whether an evaluation with nothing added would change nothing but firing alerts'
        values: no alert pending or clearing (their timers run on ticks), and every window
        left (those of firing alerts) full and empty, so sliding it keeps it as it is. Then
        further empty ticks change nothing, except where a queue's oldest wait crosses a
        threshold (:meth:`wait_conditions`); the alert stage jumps over them."""
        if self._since or self._clear:
            return False
        for windows in self._staff_windows.values():
            if windows:  # a window that still holds contacts changes what is needed
                return False
        plans = self._plans
        for name, groups in self._windows.items():
            if not groups:
                continue
            length = plans[name].length
            for w in groups.values():
                if w.cur0 or w.cur1 or w.s0 or w.s1 or w.recent or len(w.hist) < length:
                    return False
        return True

    def wait_conditions(
        self, view: Mapping[Labels, tuple[int, float]]
    ) -> frozenset[tuple[str, Labels]]:
        """The oldest-wait rules' groups whose condition holds for the queue ``view``."""
        held: set[tuple[str, Labels]] = set()
        for name, rule in self._rules:
            held.update((name, labels) for labels in rule.waiting_past(view))
        return frozenset(held)

    def _windowed(self, name: str) -> dict[Labels, tuple[bool, float, tuple[str, ...]]]:
        windows = self._windows[name]
        plan = self._plans[name]
        rule = plan.rule
        length = plan.length
        per_window = plan.per_window
        channel_at = plan.channel_at
        keep = plan.keep
        by = rule.groups()
        condition = rule.window_condition
        targeted = plan.targeted
        out: dict[Labels, tuple[bool, float, tuple[str, ...]]] = {}
        quiet = []
        for group, w in windows.items():
            # slide the window by one interval (once per group and tick), keeping the running
            # sums exact: counts are whole numbers
            hist = w.hist
            c0 = w.cur0
            c1 = w.cur1
            if len(hist) == length:
                old0, old1 = hist[0]
                s0 = w.s0 = w.s0 - old0 + c0
                s1 = w.s1 = w.s1 - old1 + c1
            else:
                s0 = w.s0 = w.s0 + c0
                s1 = w.s1 = w.s1 + c1
            hist.append((c0, c1))
            w.cur0 = w.cur1 = 0.0
            if per_window:
                w.recent += c0
                if len(hist) > per_window:
                    w.recent -= hist[-per_window - 1][0]
            if keep is not None and channel_at is not None and group[channel_at] not in keep:
                continue
            limit = self._target_threshold(by, group) if targeted else None
            judged = condition(s0, s1, w.recent, len(hist) == length, limit)
            if judged is not None:
                out[group] = (judged[0], judged[1], by)
            if not s0 and not s1 and (name, group) not in self._active:
                quiet.append(group)
        for group in quiet:  # nothing in the window and not alerting: forget it
            if (name, group) not in self._since:
                del windows[group]
        return out

    def _staff(self) -> dict[Labels, dict[str, int]] | None:
        """Agents per queue and state, for queues where agent states are reported (None while
        they are not all known); worked out once per tick."""
        if self._staff_tick is not None:
            return self._staff_tick[0]
        out: dict[Labels, dict[str, int]] = {}
        if self.staff_view is not None:
            view = self.staff_view()
            if view is None:
                self._staff_tick = (None,)
                return None
            for (labels, state), n in view.items():
                out.setdefault(labels, {})[state] = n
        self._staff_tick = (out,)
        return out

    def _staffing_gap(
        self, name: str, rule: StaffingGapRule, view: Mapping[Labels, tuple[int, float]]
    ) -> Results | None:
        """Agents needed for the window's load (Erlang C) against agents staffed now."""
        windows = self._staff_windows[name]
        staff = self._staff()
        out: Results = {}
        quiet = []
        for labels, sw in windows.items():
            queued, parts, seconds = sw.push()
            if not queued and not parts:
                quiet.append(labels)
            if staff is None:
                continue
            states = staff.get(labels)
            if states is None or not rule.keeps(labels[1]):
                continue
            staffed = sum(states.get(s, 0) for s in STAFFED)
            needed: int | None = None
            waiting = view.get(labels, (0, 0.0))[0]
            held = (name, labels) in self._active or (name, labels) in self._since
            # agents needed only matter while contacts wait (or the alert is pending/firing)
            if (waiting or held) and queued and parts and seconds > 0:
                aht = seconds / parts
                tenant, channel, queue = labels
                t = self.targets.of(tenant, channel, queue) if self.targets is not None else None
                needed = agents_needed(t, queued * aht / rule.window_seconds, aht)
            gap = (needed - staffed) if needed is not None else 0
            out[labels] = (waiting > 0 and gap >= rule.threshold, float(gap), QUEUE_LABELS)
        for labels in quiet:  # nothing in the window and not alerting: forget it
            if (name, labels) not in self._active and (name, labels) not in self._since:
                del windows[labels]
        return out if staff is not None else None

    def _target_threshold(self, by: tuple[str, ...], group: Labels) -> float | None:
        """The service-level goal of the group's queue target (None: the rule's threshold)."""
        assert self.targets is not None
        t = self.targets.of(
            group[by.index("tenant")], group[by.index("channel")], group[by.index("queue")]
        )
        return t.service_level_goal

    def _lifecycle(
        self, name: str, rule: Any, group: Labels, names: tuple[str, ...], cond: bool,
        value: float, at: float,
    ) -> None:  # fmt: skip
        key = (name, group)
        alert = self._active.get(key)
        if not cond:
            self._since.pop(key, None)
            if alert is not None:
                clear = self._clear.setdefault(key, at)
                if at - clear >= rule.keep_firing_seconds:
                    del self._active[key]
                    del self._clear[key]
                    alert.ends_at = at
                    self.sink.alert(AlertEvent("resolved", Alert(**alert.to_dict())))
            return
        if alert is not None:
            self._clear.pop(key, None)
            alert.value = value
            return
        since = self._since.setdefault(key, at)
        if at - since < rule.for_seconds:
            return
        del self._since[key]
        labels = {
            "alertname": name,
            "severity": rule.severity,
            **dict(zip(names, group, strict=True)),
        }
        alert = Alert(
            rule=name,
            fingerprint=fingerprint(labels),
            labels=labels,
            severity=rule.severity,
            summary=_summary(rule.summary, labels, value),
            runbook_url=f"{self.config.runbook_url}#{name.replace('_', '-')}",
            starts_at=at,
            value=value,
            evidence=list(self._evidence_of(name, group)),
        )
        self._active[key] = alert
        self.sink.alert(AlertEvent("firing", Alert(**alert.to_dict())))

    def _evidence_of(self, name: str, group: Labels) -> list[str]:
        w = self._windows.get(name, {}).get(group)
        return list(w.evidence) if w is not None and w.evidence is not None else []

    def firing(self) -> list[Alert]:
        return [self._active[k] for k in sorted(self._active)]

    # --- checkpoint -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        def key(k: tuple[str, Labels]) -> list[Any]:
            return [k[0], list(k[1])]

        return {
            "windows": [
                [name, list(group), w.to_list()]
                for name, groups in sorted(self._windows.items())
                for group, w in sorted(groups.items())
            ],
            "staffing": [
                [name, list(group), w.to_list()]
                for name, groups in sorted(self._staff_windows.items())
                for group, w in sorted(groups.items())
            ],
            "status": [[list(k), v] for k, v in sorted(self._status.items())],
            "active": [[*key(k), v.to_dict()] for k, v in sorted(self._active.items())],
            "since": [[*key(k), v] for k, v in sorted(self._since.items())],
            "clear": [[*key(k), v] for k, v in sorted(self._clear.items())],
        }

    def restore(self, snap: dict[str, Any]) -> None:
        self._windows = {n: {} for n, _ in self._rules}
        for name, group, data in snap["windows"]:
            plan = self._plans[name]
            self._windows[name][tuple(group)] = _Window.from_list(
                data, plan.length, self.config.evidence_limit, plan.per_window
            )
        self._staff_windows = {n: {} for n in self._staffing}
        for name, group, data in snap.get("staffing", []):
            if name in self._staffing:
                self._staff_windows[name][tuple(group)] = _StaffWindow.from_list(
                    data, self._staffing[name]
                )
        self._status = {tuple(k): float(v) for k, v in snap["status"]}
        self._active = {(r, tuple(g)): Alert(**v) for r, g, v in snap["active"]}
        self._since = {(r, tuple(g)): float(v) for r, g, v in snap["since"]}
        self._clear = {(r, tuple(g)): float(v) for r, g, v in snap["clear"]}


class _Tick:
    """What the rules read at one evaluation tick (:class:`alerts.rules.Tick`), each part
    worked out at most once."""

    __slots__ = ("_view", "at", "logic")

    def __init__(self, logic: AlertLogic, at: float) -> None:
        self.logic = logic
        self.at = at
        self._view: dict[Labels, tuple[int, float]] | None = None

    def queue_view(self) -> dict[Labels, tuple[int, float]]:
        if self._view is None:
            qv = self.logic.queue_view
            self._view = qv(self.at) if qv is not None else {}
        return self._view

    def staff(self) -> dict[Labels, dict[str, int]] | None:
        return self.logic._staff()

    def status(self) -> Mapping[Labels, float]:
        return self.logic._status

    def windowed(self, name: str, held: bool) -> Results | None:
        if self.logic._windows[name]:
            return self.logic._windowed(name)
        return {} if held else None  # no window to slide: only what is pending or firing

    def staffing_gap(self, name: str, rule: StaffingGapRule) -> Results | None:
        return self.logic._staffing_gap(name, rule, self.queue_view())


class _StaffWindow:
    """A staffing rule's window for one queue: per interval (queued, handled parts, handle
    seconds), with running sums (the counts are whole numbers, so an emptied window sums to
    exactly zero; its seconds are then reset to zero)."""

    __slots__ = ("cur", "hist", "length", "sums")

    def __init__(self, length: int) -> None:
        self.length = length
        self.cur = [0.0, 0.0, 0.0]
        self.hist: deque[tuple[float, float, float]] = deque()
        self.sums = [0.0, 0.0, 0.0]

    def push(self) -> tuple[float, float, float]:
        """Close the current interval into the window; the window's sums."""
        cur = self.cur
        q, n, sec = self.sums[0] + cur[0], self.sums[1] + cur[1], self.sums[2] + cur[2]
        self.hist.append((cur[0], cur[1], cur[2]))
        if len(self.hist) > self.length:
            oq, on, osec = self.hist.popleft()
            q, n, sec = q - oq, n - on, sec - osec
        if not n:
            sec = 0.0
        self.sums = [q, n, sec]
        self.cur = [0.0, 0.0, 0.0]
        return q, n, sec

    def to_list(self) -> list[Any]:
        return [self.cur, [list(h) for h in self.hist], self.sums]

    @classmethod
    def from_list(cls, data: list[Any], length: int) -> _StaffWindow:
        w = cls(length)
        w.cur = [float(x) for x in data[0]]
        w.hist = deque((float(a), float(b), float(c)) for a, b, c in data[1][-length:])
        if len(data) > 2:
            w.sums = [float(x) for x in data[2]]
        else:
            w.sums = [sum(h[i] for h in w.hist) for i in range(3)]
        return w


@dataclass(frozen=True)
class _Plan:
    """A windowed rule's constants: window length in intervals, the silence rules' recent part,
    where the channel is in a group, which channels the rule keeps, whether its threshold is
    its queue's target."""

    rule: BaseRule
    length: int
    per_window: int
    channel_at: int | None
    keep: tuple[str, ...] | None
    targeted: bool = False  # a ratio rule whose threshold is its queue's target


class _Window:
    """A group's sliding window of per-interval counts, with running sums (O(1) a tick; the
    slide is in :meth:`AlertLogic._windowed`)."""

    __slots__ = ("cur0", "cur1", "evidence", "hist", "recent", "s0", "s1")

    def __init__(self, length: int, evidence_limit: int) -> None:
        self.hist: deque[tuple[float, float]] = deque(maxlen=length)
        self.s0 = self.s1 = 0.0  # window sums (counts are whole numbers: sums stay exact)
        self.recent = 0.0  # sum of the last `per_window` intervals (silence rules)
        self.cur0 = self.cur1 = 0.0  # the interval being filled
        self.evidence: deque[str] | None = deque(maxlen=evidence_limit) if evidence_limit else None

    def to_list(self) -> list[Any]:
        return [[list(h) for h in self.hist], self.cur0, self.cur1,
                list(self.evidence) if self.evidence is not None else []]  # fmt: skip

    @classmethod
    def from_list(
        cls, data: list[Any], length: int, evidence_limit: int, per_window: int = 0
    ) -> _Window:
        w = cls(length, evidence_limit)
        hist, w.cur0, w.cur1, evidence = data
        per = [(float(a), float(b)) for a, b in hist]
        w.hist.extend(per)
        w.s0 = sum(a for a, _ in per)
        w.s1 = sum(b for _, b in per)
        # the silence rules' recent sum is derived state too (it was lost on restore, so a
        # restored worker saw every channel as silent for one window)
        w.recent = sum(a for a, _ in per[-per_window:]) if per_window else 0.0
        if w.evidence is not None:
            w.evidence.extend(evidence)
        return w


class AlertTimeline:
    """Collects alert transitions for a report (an :class:`AlertSink`)."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def alert(self, event: AlertEvent) -> None:
        self.events.append(event)

    def alerts(self) -> list[Alert]:
        """Every alert that fired, once, with its end if it resolved."""
        fired: dict[tuple[str, float], Alert] = {}
        for ev in self.events:
            key = (ev.alert.fingerprint, ev.alert.starts_at)
            fired[key] = Alert(**ev.alert.to_dict())
        return sorted(fired.values(), key=lambda a: (a.starts_at, a.fingerprint))
