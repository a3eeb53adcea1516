"""The audit trail: the hash-chained event archive that live workers write and replays read
(:mod:`streams.audit.archive`). ``audit reconcile`` sits above the replay driver, in
:mod:`streams.reconcile`."""
