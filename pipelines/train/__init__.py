"""Offline training of the sentiment, frustration and escalation heads."""
