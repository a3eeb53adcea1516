"""Customer surveys: CSAT, CES and NPS answers, counted where the contact belongs.

An answer (``survey.answered``) refers to a contact. It is counted on that contact's labels
(tenant, channel, queue), its agent (the last one on the contact, pseudonymous, in the
report's per-agent rows only) and its day (the contact's start), however late it arrives, so a
period's satisfaction is that of the contacts it handled. To do so a small reference per
handled contact is kept for ``survey_window_seconds`` after the contact ends (memory: the
contacts of that window, one slotted entry each). An answer about a contact not known (never
seen, or older than the window) is counted on its own labels and day and as data quality
(``dq_survey_contact_unknown``); one whose score does not fit its scale changes nothing and is
counted as ``dq_survey_out_of_scale``. The free-text verbatim is never kept, logged or labelled.

Definitions (docs/kpis.md): CSAT = answers in the top two boxes / answers; CES (the CX
report's "customers who say the company made it easy") = answers above the scale's midpoint /
answers, mean effort = mean score; NPS = (promoters 9-10 - detractors 0-6) / answers.
One-touch: at the time of the answer the contact's case had one agent interaction, no transfer
and no reopen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kpis import wire as w
from kpis.core import Handler, Timer, TimerHandler
from kpis.rules.base import TIMER_SURVEY, Rule, RuleContext
from kpis.rules.cases import CaseRules, is_one_touch, record_labels
from kpis.state import NO_LABEL, ContactState, SurveyRef


class SurveyRules(Rule):
    name = "surveys"

    def __init__(
        self, ctx: RuleContext, contacts: dict[str, ContactState], cases: CaseRules
    ) -> None:
        super().__init__(ctx)
        self.recent: dict[str, SurveyRef] = {}
        self._contacts = contacts  # the contact rules' (open contacts)
        self._cases = cases

    def handlers(self) -> Mapping[str, Handler]:
        # contact.ended: registered before the contact rules, which may delete the contact
        return {"contact.ended": self._on_contact_ended, "survey.answered": self._on_answered}

    def timers(self) -> Mapping[int, TimerHandler]:
        return {TIMER_SURVEY: self._expire}

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
        old = self.recent.get(c.contact_id)
        ref = self._ref(c, ts + window)
        if old is not None:
            ref.answered = old.answered
        self.recent[c.contact_id] = ref
        self.schedule(ref.until, TIMER_SURVEY, c.contact_id)

    def _expire(self, cid: str, when: float) -> None:
        ref = self.recent.get(cid)
        if ref is not None and when >= ref.until:
            del self.recent[cid]

    def _on_answered(self, rec: w.SurveyAnswered, ts: float) -> None:
        kind, score, scale = rec.survey, rec.score, rec.scale
        if (kind == "nps" and scale != 10) or (
            kind != "nps" and (scale == 10 or not 1 <= score <= scale)
        ):
            self.sink.count("dq_survey_out_of_scale", record_labels(rec), ts)
            return
        ref = self.recent.get(rec.contact_id)
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

    def pending_timers(self) -> Iterable[Timer]:
        for cid, ref in self.recent.items():
            yield (ref.until, TIMER_SURVEY, cid)

    def snapshot(self, objects: bool) -> dict[str, Any]:
        if objects:
            return {"surveys": dict(self.recent)}
        return {"surveys": {k: v.to_dict() for k, v in self.recent.items()}}

    def restore(self, snap: Mapping[str, Any]) -> None:
        if "surveys" in snap:
            self.recent = {k: SurveyRef.from_dict(v) for k, v in snap["surveys"].items()}
