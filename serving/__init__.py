"""Runtime of escalation-scoring: schema, features, rules, scoring and the HTTP API.

Importing this package switches off the telemetry of the libraries it uses, before any of
them is imported, so that scoring never sends data off the machine.
"""

from serving.offline import disable_telemetry

disable_telemetry()
