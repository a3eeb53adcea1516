"""Kafka plumbing: connection settings and topics (:mod:`streams.kafka.settings`), the
producer behind ``cc-monitor produce`` and ``tail`` (:mod:`streams.kafka.producer`), the live
worker's runtime and its parts (:mod:`streams.kafka.worker`, no I/O of its own), its aiokafka
driver (:mod:`streams.kafka.driver`) and how the two are built (:mod:`streams.kafka.app`)."""
