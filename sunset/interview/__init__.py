"""Interviewing a model before it is retired: protocol, sessions, verbatim transcripts."""
