"""The HTML model report: per-row scores, their summaries, the figures and the page."""
