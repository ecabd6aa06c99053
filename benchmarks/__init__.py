"""Speed and memory benchmarks of escalation-scoring, run by hand and not by the test suite."""
