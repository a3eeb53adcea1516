"""Kafka plumbing: connection settings and topics (:mod:`streams.kafka.settings`), the
producer behind ``cc-monitor produce`` and ``tail`` (:mod:`streams.kafka.producer`), the live
worker's runtime (:mod:`streams.kafka.worker`, no Faust) and its Faust app
(:mod:`streams.kafka.app`)."""
