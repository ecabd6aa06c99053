"""Benchmarks on public corpora (MHCH, USS, TweetEval, GoEmotions) with the authors' metrics."""
