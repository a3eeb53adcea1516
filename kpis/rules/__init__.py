"""KPI rules, one module per domain; each registers handlers per event type with the core.

* :mod:`kpis.rules.contacts`: contacts, queues, hand-off and handling
* :mod:`kpis.rules.ivr`: the IVR and its KS S 1006 breaches
* :mod:`kpis.rules.cases`: first response, resolution, one-touch, reopens
* :mod:`kpis.rules.callbacks`: callbacks within 24 h or at the reserved time
* :mod:`kpis.rules.platform`: component status (incidents)

Adding a KPI: docs/architecture.md.
"""
