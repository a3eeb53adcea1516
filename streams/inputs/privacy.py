"""Pseudonymization of customer identifiers at ingest (a keyed hash: stable per key, not
reversible without it). Contact, customer and agent ids never go into labels or log lines."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymizer:
    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def __call__(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return "p-" + digest[:20]
