"""Customer surveys: CSAT, CES and NPS answers, counted where the contact belongs.

An answer (``survey.answered``) refers to a contact. It is counted on that contact's labels
(tenant, channel, queue), its agent (the last one on the contact, pseudonymous, in the
report's per-agent rows only) and its day (the contact's start), however late it arrives, so a
period's satisfaction is that of the contacts it handled. To do so a small reference per
handled contact is kept for ``survey_window_seconds`` after the contact ends (memory: the
contacts of one to two windows, one slotted entry each, in two generations that rotate every
window: no timer per contact, so a log without surveys pays one dict entry per contact).
An answer about a contact not known (never seen, or older than the window) is counted on its
own labels and day and as data quality (``dq_survey_contact_unknown``); one whose score does
not fit its scale changes nothing and is counted as ``dq_survey_out_of_scale``. The free-text
verbatim is never kept, logged or labelled.

Definitions (docs/kpis.md): CSAT = answers in the top two boxes / answers; CES (the CX
report's "customers who say the company made it easy") = answers above the scale's midpoint /
answers, mean effort = mean score; NPS = (promoters 9-10 - detractors 0-6) / answers.
One-touch: at the time of the answer the contact's case had one agent interaction, no transfer
and no reopen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kpis import wire as w
from kpis.core import Handler
from kpis.rules.base import Rule, RuleContext
from kpis.rules.cases import CaseRules, is_one_touch, record_labels
from kpis.state import NO_LABEL, ContactState, SurveyRef


class SurveyRules(Rule):
    name = "surveys"

    def __init__(
        self, ctx: RuleContext, contacts: dict[str, ContactState], cases: CaseRules
    ) -> None:
        super().__init__(ctx)
        # Two generations of references: a reference is in ``recent`` or ``_old``; ``_old`` is
        # dropped at the rotation after the one that made it old, a window later, when every
        # reference in it has expired (``until`` = its contact's end + the window). A lookup
        # takes a reference only while the event time is at or before its ``until``, which is
        # when the expiry timer of before would not yet have fired.
        self.recent: dict[str, SurveyRef] = {}
        self._old: dict[str, SurveyRef] = {}
        self._rotate_at = -math.inf
        self._contacts = contacts  # the contact rules' (open contacts)
        self._cases = cases

    def handlers(self) -> Mapping[str, Handler]:
        # contact.ended: registered before the contact rules, which may delete the contact
        return {"contact.ended": self._on_contact_ended, "survey.answered": self._on_answered}

    def _rotate(self, ts: float) -> None:
        self._old = self.recent
        self.recent = {}
        self._rotate_at = ts + self.config.survey_window_seconds

    def _known(self, cid: str, ts: float) -> SurveyRef | None:
        """The reference of contact ``cid`` still in its window at ``ts``."""
        ref = self.recent.get(cid)
        if ref is None:
            ref = self._old.get(cid)
        return ref if ref is not None and ts <= ref.until else None

    def _ref(self, c: ContactState, until: float) -> SurveyRef:
        agent = c.segments[-1].agent if c.segments else None
        k = self._cases.cases.get(c.case_id)
        one = k is not None and is_one_touch(k)
        return SurveyRef(c.labels, agent, c.started, c.case_id, one, until)

    def _on_contact_ended(self, rec: w.ContactEnded, ts: float) -> None:
        window = self.config.survey_window_seconds
        c = self._contacts.get(rec.contact_id)
        if c is None or not window or not (c.segments or c.answered):
            return  # only contacts that reached an agent are surveyed about
        if ts >= self._rotate_at:
            self._rotate(ts)
        old = self._known(c.contact_id, ts)
        ref = self._ref(c, ts + window)
        if old is not None:
            ref.answered = old.answered
        self.recent[c.contact_id] = ref

    def _on_answered(self, rec: w.SurveyAnswered, ts: float) -> None:
        kind, score, scale = rec.survey, rec.score, rec.scale
        if (kind == "nps" and scale != 10) or (
            kind != "nps" and (scale == 10 or not 1 <= score <= scale)
        ):
            self.sink.count("dq_survey_out_of_scale", record_labels(rec), ts)
            return
        if ts >= self._rotate_at and self.config.survey_window_seconds:
            self._rotate(ts)
        ref = self._known(rec.contact_id, ts)
        if ref is None:
            c = self._contacts.get(rec.contact_id)
            if c is not None:  # still open (answered during the contact, or never ended)
                ref = self._ref(c, ts)
        if ref is None:
            labels = record_labels(rec)
            agent, when, one = rec.agent_id, ts, False
            self.sink.count("dq_survey_contact_unknown", labels, ts)
            first = True
        else:
            labels, agent, when = ref.labels, ref.agent, ref.started
            k = self._cases.cases.get(ref.case_id)
            one = is_one_touch(k) if k is not None else ref.one_touch
            first = not ref.answered
            ref.answered = True
        count = self.sink.count
        if first:
            count("surveys_answered", labels, when)
        by_agent = (labels[0], agent) if agent is not None and agent != NO_LABEL else None
        if kind == "csat":
            good = score >= scale - 1  # the top two boxes
            count("survey_csat_answers", labels, when)
            touch = "survey_csat_one_touch_" if one else "survey_csat_multi_touch_"
            count(touch + "answers", labels, when)
            if good:
                count("survey_csat_satisfied", labels, when)
                count(touch + "satisfied", labels, when)
            if by_agent is not None:
                count("agent_csat_answers", by_agent, when)
                if good:
                    count("agent_csat_satisfied", by_agent, when)
        elif kind == "ces":
            easy = 2 * score > scale + 1  # above the midpoint: agrees it was easy
            count("survey_ces_answers", labels, when)
            self.sink.observe("survey_ces_score", labels, when, float(score))
            if easy:
                count("survey_ces_easy", labels, when)
            if by_agent is not None:
                count("agent_ces_answers", by_agent, when)
                if easy:
                    count("agent_ces_easy", by_agent, when)
        else:
            side = "promoters" if score >= 9 else ("detractors" if score <= 6 else None)
            count("survey_nps_answers", labels, when)
            if side is not None:
                count("survey_nps_" + side, labels, when)
            if by_agent is not None:
                count("agent_nps_answers", by_agent, when)
                if side is not None:
                    count("agent_nps_" + side, by_agent, when)

    def snapshot(self, objects: bool) -> dict[str, Any]:
        refs = {**self._old, **self.recent}
        if objects:
            return {"surveys": refs}
        return {"surveys": {k: v.to_dict() for k, v in refs.items()}}

    def restore(self, snap: Mapping[str, Any]) -> None:
        if "surveys" in snap:
            # all in the newer generation: kept for another one to two windows at most
            self.recent = {k: SurveyRef.from_dict(v) for k, v in snap["surveys"].items()}
            self._old = {}
            self._rotate_at = -math.inf
