"""Where the engine's observations go besides the replay report (:mod:`kpis.report`):
Prometheus aggregates (:mod:`streams.sinks.metrics`) and the live read model served at
``/api/kpis`` (:mod:`streams.sinks.readmodel`). Both take their series from
:mod:`kpis.catalogue`."""
