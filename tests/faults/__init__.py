"""Fault servers for the tests: real sockets on 127.0.0.1 that misbehave on purpose.

``S3FaultProxy`` stands in front of SeaweedFS and answers 500/503, resets connections and
stalls; ``TcpRelay`` stands in front of any TCP service (SMTP, the Prefect API) and adds
latency or drops connections. Both count what they injected, so a test can prove that the
faults it relies on really happened.
"""
