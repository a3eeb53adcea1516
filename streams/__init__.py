"""Drivers of the engine: where events come from and where observations go.

The data path, one folder a stage (imports point down this list, never up):

* :mod:`streams.inputs`: files, standard input and other systems' records (importers), the
  pseudonymizer, line utilities. No Kafka, no archive.
* :mod:`streams.sinks`: Prometheus aggregates and the live read model (``/api/kpis``).
* :mod:`streams.partitioned`: one engine per input partition, checkpointed with its offsets.
* :mod:`streams.audit`: the hash-chained event archive (written live, read by replays).
* :mod:`streams.kafka`: Kafka plumbing: settings and topics, the producer, the live worker
  runtime and its Faust app.
* :mod:`streams.replay`: the replay driver (files, archives, Kafka ranges, importers).
* :mod:`streams.reconcile`: ``audit reconcile``, a replay of the archive against what the
  workers published.
"""
