"""Serving: the status state machine, its guards, the gateway route, and approvals."""
