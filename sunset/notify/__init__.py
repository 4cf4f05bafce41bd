"""Telling the users who depend on a model: recipients, messages, channels, deliveries."""
