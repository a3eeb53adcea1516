"""Label values stay bounded whatever the sources send: the first values of each dimension are
kept, every later one is folded into :data:`OTHER`.

Tenants, queues, IVR flows and menus and platform components become metric labels, report rows,
``/api/kpis`` rows and per-queue state; agent ids become report and ``/api/agents`` rows and
agent state. A router that puts a call id in the queue field, or one hostile producer, would
otherwise grow all of them without end. This rule runs first for every
event (in event-time order, so a replay and a live partition fold the same stream the same
way) and rewrites the record's label fields in place before any other rule reads them:

* a value already admitted, or named by the configuration (a target rule's tenant and queue,
  an IVR flow and its menus from ``label_caps.ivr_flows``), passes (with ``configured_only``,
  named dimensions pass only so: the configuration alone then decides, so live partitions
  and a replay fold exactly alike);
* a new value is admitted while its dimension has fewer than its cap
  (:class:`kpis.config.LabelCaps`: tenants; queues per tenant and in all; flows per tenant;
  menus per flow and in all; components; agents);
* past the cap it becomes ``other``, and the event is counted as data quality
  ``label_folded_<dimension>`` on its (folded) labels; the first few such values are kept as
  short digests (never the value: it may be an id) for ``/health`` and the report.

Admitted values are part of the checkpoint, so a restart folds as before. State: at most the
caps' values, plus :data:`EXAMPLES` digests per dimension.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from kpis import wire as w
from kpis.config import ReasonList
from kpis.core import Handler
from kpis.rules.base import Rule, RuleContext
from kpis.rules.cases import record_labels
from kpis.state import NO_LABEL
from kpis.wire import TYPE_OF, Rec

OTHER = "other"
"""The value every label past its dimension's cap becomes."""
UNKNOWN = "unknown"
"""The reason a code outside its tenant's configured list becomes."""
EXAMPLES = 3
_ANY = "\x00"  # a configured queue named for every tenant
IvrRec = w.IvrEntered | w.IvrMenu | w.IvrInput | w.IvrExited


def digest(value: str) -> str:
    """What a folded value is shown as: its length and a short hash, never the value."""
    return f"{hashlib.sha256(value.encode()).hexdigest()[:10]} ({len(value)} chars)"


class LabelRules(Rule):
    name = "labels"

    def __init__(self, ctx: RuleContext) -> None:
        super().__init__(ctx)
        caps = ctx.config.label_caps
        self.caps = {"tenant": caps.tenants, "queue": caps.queues_per_tenant,
                     "flow": caps.flows_per_tenant, "menu": caps.menus_per_flow,
                     "component": caps.components, "agent": caps.agents,
                     "reason": caps.reasons_per_tenant,
                     "complaint_category": caps.complaint_categories_per_tenant,
                     "pause_reason": caps.pause_reasons_per_tenant}  # fmt: skip
        # dimensions kept per tenant (or flow) also have a cap over all of them: [admitted, cap]
        self.totals: dict[str, list[int]] = {"queue": [0, caps.queues], "menu": [0, caps.menus]}
        self.tenants: set[str] = set()
        # per tenant (queues, flows), per tenant and flow (menus); keys are bounded by the caps
        self.queues: dict[str, set[str]] = {}
        self.flows: dict[str, set[str]] = {}
        self.menus: dict[str, set[str]] = {}
        self.components: set[str] = set()
        self.agents: set[str] = {NO_LABEL}  # the "no agent" id is no agent: never folded
        self.examples: dict[str, list[str]] = {}
        # named by the configuration: always admitted, outside the caps
        self.named_tenants: set[str] = set()
        self.named_queues: set[tuple[str, str]] = set()
        for t in ctx.config.targets:
            if t.tenant is not None:
                self.named_tenants.add(t.tenant)
            if t.queue is not None:
                self.named_queues.add((t.tenant if t.tenant is not None else _ANY, t.queue))
        # configured_only: the lists are the only values (no first-N), per tenant
        self.only = caps.configured_only
        every = {q for t, q in self.named_queues if t == _ANY}
        self.queue_lists: dict[str, set[str]] = {}
        for tenant, queue in self.named_queues:
            if tenant != _ANY:
                self.queue_lists.setdefault(tenant, set(every)).add(queue)
        self.every_tenant_queues = every
        # IVR flows and menus named by the configuration (engine.label_caps.ivr_flows): as
        # queues are, per tenant or (_ANY) for every tenant; with configured_only a tenant's
        # named flows, and a named flow's menus, are the only ones when there are any
        self.named_flows: set[tuple[str, str]] = set()
        self.named_menus: set[tuple[str, str, str]] = set()
        for f in caps.ivr_flows:
            who = f.tenant if f.tenant is not None else _ANY
            self.named_flows.add((who, f.flow))
            self.named_menus.update((who, f.flow, m) for m in f.menus)
        self.flow_lists = _lists({(t, "", f) for t, f in self.named_flows})
        self.menu_lists = _lists(self.named_menus)
        # contact reason codes: a tenant's configured list (or every tenant's), else first-N
        self.reason_lists = _by_tenant(ctx.config.contact_reasons)
        self.reasons: dict[str, set[str]] = {}
        self.category_lists = _by_tenant(ctx.config.complaint_categories)
        self.categories: dict[str, set[str]] = {}
        self.pause_lists = _by_tenant(ctx.config.pause_reasons)
        self.pauses: dict[str, set[str]] = {}
        # the reason rules (kpis.rules.reasons), told of every event with codes
        self.on_reasons: Handler | None = None

        # The fast path (every event pays it): what passed unfolded before passes again, by one
        # dict and one set lookup. Derived from the admitted values (not in the checkpoint:
        # refilled as events pass), so bounded by the caps.
        self._passed: dict[str | None, set[str | None]] = {}
        self._passed_ivr: set[tuple[str | None, str, str | None]] = set()

    def handlers(self) -> Mapping[str, Handler]:
        out: dict[str, Handler] = {t: self._fold_plain for t in TYPE_OF.values()}
        out["ivr.menu"] = out["ivr.input"] = self._fold_menu
        out["ivr.entered"] = out["ivr.exited"] = self._fold_flow
        out[TYPE_OF[w.SystemStatus]] = self._fold_component
        out[TYPE_OF[w.ContactTransferred]] = self._fold_transfer
        out["contact.ended"] = out["wrapup.ended"] = self._fold_coded
        out["complaint.opened"] = self._fold_complaint
        out["agent.state"] = self._fold_state
        return out

    def _fold_coded(self, rec: w.ContactEnded | w.WrapupEnded, ts: float) -> None:
        """The labels, then, when it has any, the reason codes as
        kept (each once, in order; a code outside its tenant's list ``unknown``, past a
        tenant's cap ``other``), handed to the reason rules (``on_reasons``) before any other
        rule sees the event: an event without codes pays one test."""
        self._fold_plain(rec, ts)
        if rec.reasons:
            rec.reasons = self._fold_reasons(rec, ts)
            if self.on_reasons is not None:
                self.on_reasons(rec, ts)

    def _fold_reasons(self, rec: w.ContactEnded | w.WrapupEnded, ts: float) -> list[str]:
        out: list[str] = []
        for code in rec.reasons:
            code = self._code(rec, ts, code, self.reason_lists, self.reasons, "reason")
            if code not in out:
                out.append(code)
        return out

    def _code(self, rec: Rec, ts: float, code: str, lists: Mapping[str, frozenset[str]],
              known: dict[str, set[str]], dimension: str) -> str:  # fmt: skip
        """A code of a bounded list (a contact reason, a complaint category) as kept: itself
        if its tenant's list (or the list for every tenant) has it, else ``unknown`` (data
        quality ``unknown_<dimension>``); without a list, the tenant's first codes up to the
        cap, then ``other``."""
        tenant = rec.tenant if rec.tenant is not None else NO_LABEL
        listed = lists.get(tenant)
        if listed is None:
            listed = lists.get(_ANY)
        if listed is not None:
            if code in listed:
                return code
            self.sink.count("dq_unknown_" + dimension, record_labels(rec), ts)
            return UNKNOWN
        mine = known.get(tenant)
        if mine is None:
            mine = known[tenant] = set()
        if self._admit(mine, code, dimension):
            return code
        self._count(rec, ts, [dimension])
        return OTHER

    def _fold_state(self, rec: w.AgentState, ts: float) -> None:
        self._fold_plain(rec, ts)
        if rec.reason is not None:
            rec.reason = self._code(rec, ts, rec.reason, self.pause_lists, self.pauses,
                                    "pause_reason")  # fmt: skip

    def _fold_complaint(self, rec: w.ComplaintOpened, ts: float) -> None:
        self._fold_plain(rec, ts)
        rec.category = self._code(rec, ts, rec.category, self.category_lists, self.categories,
                                  "complaint_category")  # fmt: skip

    def _fold_plain(self, rec: Rec, ts: float) -> None:
        passed = self._passed.get(rec.tenant)
        agent = rec.agent_id
        if (
            passed is None
            or rec.queue not in passed
            or (agent is not None and agent not in self.agents)
        ):
            self._fold(rec, ts)

    def _fold_menu(self, rec: w.IvrMenu | w.IvrInput, ts: float) -> None:
        passed = self._passed.get(rec.tenant)
        if (passed is None or rec.queue not in passed
                or (rec.tenant, rec.flow, rec.menu) not in self._passed_ivr):  # fmt: skip
            self._fold_ivr(rec, ts)

    def _fold_flow(self, rec: w.IvrEntered | w.IvrExited, ts: float) -> None:
        passed = self._passed.get(rec.tenant)
        if (passed is None or rec.queue not in passed
                or (rec.tenant, rec.flow, None) not in self._passed_ivr):  # fmt: skip
            self._fold_ivr(rec, ts)

    # --- folding ---------------------------------------------------------------------------

    def _admit(self, known: set[str], value: str, dimension: str) -> bool:
        if value in known:
            return True
        total = self.totals.get(dimension)
        if len(known) < self.caps[dimension] and (total is None or total[0] < total[1]):
            known.add(value)
            if total is not None:
                total[0] += 1
            return True
        self._example(dimension, value)
        return False

    def _example(self, dimension: str, value: str) -> None:
        seen = self.examples.setdefault(dimension, [])
        if len(seen) < EXAMPLES and digest(value) not in seen:
            seen.append(digest(value))

    def _count(self, rec: Rec, ts: float, dimensions: list[str]) -> None:
        """Counted once the record's labels are all folded (a count must not carry the value
        it folds)."""
        labels = (rec.tenant or NO_LABEL, rec.channel, rec.queue or NO_LABEL)
        for dimension in dimensions:
            self.sink.count("dq_label_folded_" + dimension, labels, ts)

    def _queue_ok(self, tenant: str, queue: str) -> bool:
        if self.only:
            allowed = self.queue_lists.get(tenant) or self.every_tenant_queues
            if allowed:
                if queue in allowed:
                    return True
                self._example("queue", queue)
                return False
        known = self.queues.get(tenant)
        if known is None:
            known = self.queues[tenant] = set()
        named = self.named_queues
        if queue in known or (tenant, queue) in named or (_ANY, queue) in named:
            return True
        return self._admit(known, queue, "queue")

    def _queue(self, tenant: str, queue: str | None, folded: list[str]) -> str | None:
        """``queue`` (a queue or transfer target field) as kept: itself, or ``other``."""
        if queue is None or self._queue_ok(tenant, queue):
            return queue
        folded.append("queue")
        return OTHER

    def _agent(self, agent: str | None, folded: list[str]) -> str | None:
        """``agent`` (an agent or transfer target field) as kept: itself, or ``other``."""
        if agent is None or self._admit(self.agents, agent, "agent"):
            return agent
        folded.append("agent")
        return OTHER

    def _tenant_ok(self, tenant: str) -> bool:
        """A tenant no target rule names: within the cap, unless only named ones are kept."""
        if self.only and self.named_tenants:
            self._example("tenant", tenant)
            return False
        return self._admit(self.tenants, tenant, "tenant")

    def _tenant_and_queue(self, rec: Rec, folded: list[str]) -> str:
        t = rec.tenant
        if t is not None and t not in self.named_tenants and not self._tenant_ok(t):
            rec.tenant = t = OTHER
            folded.append("tenant")
        tenant = t if t is not None else NO_LABEL
        rec.queue = self._queue(tenant, rec.queue, folded)
        rec.agent_id = self._agent(rec.agent_id, folded)
        return tenant

    def _fold(self, rec: Rec, ts: float) -> None:
        folded: list[str] = []
        self._tenant_and_queue(rec, folded)
        if folded:
            self._count(rec, ts, folded)
        else:  # unchanged (an agent admitted is in self.agents, which the fast path reads)
            self._passed.setdefault(rec.tenant, set()).add(rec.queue)

    def _fold_transfer(self, rec: w.ContactTransferred, ts: float) -> None:
        folded: list[str] = []
        tenant = self._tenant_and_queue(rec, folded)
        rec.to_queue = self._queue(tenant, rec.to_queue, folded)
        rec.to_agent_id = self._agent(rec.to_agent_id, folded)
        if folded:
            self._count(rec, ts, folded)

    def _fold_ivr(self, rec: IvrRec, ts: float) -> None:
        folded: list[str] = []
        tenant = self._tenant_and_queue(rec, folded)
        if not self._flow_ok(tenant, rec.flow):
            rec.flow = OTHER
            folded.append("flow")
        menu = getattr(rec, "menu", None)
        if menu is not None and not self._menu_ok(tenant, rec.flow, menu):
            rec.menu = OTHER  # type: ignore[union-attr]
            folded.append("menu")
        if folded:
            self._count(rec, ts, folded)
        else:  # unchanged: what the fast paths look up
            self._passed.setdefault(rec.tenant, set()).add(rec.queue)
            self._passed_ivr.add((rec.tenant, rec.flow, menu))

    def _named(self, lists: dict[tuple[str, str], set[str]], tenant: str, group: str,
               value: str, dimension: str) -> bool | None:  # fmt: skip
        """True: ``value`` is named (for ``tenant`` or every tenant) in its ``group``; False:
        configured_only and the group names others; None: the cap decides."""
        mine, every = lists.get((tenant, group)), lists.get((_ANY, group))
        if (mine is not None and value in mine) or (every is not None and value in every):
            return True
        if self.only and (mine or every):
            self._example(dimension, value)
            return False
        return None

    def _flow_ok(self, tenant: str, flow: str) -> bool:
        named = self._named(self.flow_lists, tenant, "", flow, "flow")
        if named is not None:
            return named
        flows = self.flows.get(tenant)
        if flows is None:
            flows = self.flows[tenant] = set()
        return self._admit(flows, flow, "flow")

    def _menu_ok(self, tenant: str, flow: str, menu: str) -> bool:
        named = self._named(self.menu_lists, tenant, flow, menu, "menu")
        if named is not None:
            return named
        key = tenant + "\x1f" + flow
        menus = self.menus.get(key)
        if menus is None:
            menus = self.menus[key] = set()
        return self._admit(menus, menu, "menu")

    def _fold_component(self, rec: w.SystemStatus, ts: float) -> None:
        folded: list[str] = []
        self._tenant_and_queue(rec, folded)
        if not self._admit(self.components, rec.component, "component"):
            rec.component = OTHER
            folded.append("component")
        if folded:
            self._count(rec, ts, folded)

    # --- views and checkpoints -------------------------------------------------------------

    def folded_examples(self) -> dict[str, list[str]]:
        """Per dimension that folded a value: the digests of its first folded values."""
        return {k: list(v) for k, v in sorted(self.examples.items())}

    def snapshot(self, objects: bool) -> dict[str, Any]:
        return {
            "labels": {
                "tenants": sorted(self.tenants),
                "queues": {k: sorted(v) for k, v in sorted(self.queues.items())},
                "flows": {k: sorted(v) for k, v in sorted(self.flows.items())},
                "menus": {k: sorted(v) for k, v in sorted(self.menus.items())},
                "components": sorted(self.components),
                "agents": sorted(self.agents),
                "reasons": {k: sorted(v) for k, v in sorted(self.reasons.items())},
                "categories": {k: sorted(v) for k, v in sorted(self.categories.items())},
                "pauses": {k: sorted(v) for k, v in sorted(self.pauses.items())},
                "examples": self.folded_examples(),
            }
        }

    def restore(self, snap: Mapping[str, Any]) -> None:
        s = snap.get("labels")
        if s is None:
            return  # a checkpoint from before the caps: every value seen from here is new
        self.tenants = set(s["tenants"])
        self.queues = {k: set(v) for k, v in s["queues"].items()}
        self.flows = {k: set(v) for k, v in s["flows"].items()}
        self.menus = {k: set(v) for k, v in s["menus"].items()}
        self.components = set(s["components"])
        self.agents = set(s.get("agents", [NO_LABEL]))
        self.reasons = {k: set(v) for k, v in s.get("reasons", {}).items()}
        self.categories = {k: set(v) for k, v in s.get("categories", {}).items()}
        self.pauses = {k: set(v) for k, v in s.get("pauses", {}).items()}
        self.examples = {k: list(v) for k, v in s["examples"].items()}
        self.totals["queue"][0] = sum(len(v) for v in self.queues.values())
        self.totals["menu"][0] = sum(len(v) for v in self.menus.values())


def _by_tenant(lists: Iterable[ReasonList]) -> dict[str, frozenset[str]]:
    """Configured code lists (kpis.config.ReasonList) by tenant (:data:`_ANY`: every tenant)."""
    return {r.tenant if r.tenant is not None else _ANY: frozenset(r.codes) for r in lists}


def _lists(named: set[tuple[str, str, str]]) -> dict[tuple[str, str], set[str]]:
    """(tenant, group, value) triples as the values per (tenant, group)."""
    out: dict[tuple[str, str], set[str]] = {}
    for tenant, group, value in named:
        out.setdefault((tenant, group), set()).add(value)
    return out


def folded_doc(
    examples: Mapping[str, list[str]], quality: Mapping[str, int]
) -> dict[str, dict[str, Any]]:
    """The report's ``labels_folded``: per dimension, the events whose value was folded (the
    data-quality count) and the first folded values' digests."""
    return {
        dim: {"events": quality.get("label_folded_" + dim, 0), "examples": list(ex)}
        for dim, ex in sorted(examples.items())
    }
