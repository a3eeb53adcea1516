"""Alert rules, lifecycle and delivery (issue 4). Imports only from ``kpis``."""
