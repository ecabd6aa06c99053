"""Adapters that turn the raw corpora into `serving.schema.Conversation` lists, and their splits.

Modules: `uss` (per-turn satisfaction), `goemotions` (sentiment and frustration), `mhch`
(handoff points), `splits` (stored train/validation/test splits) and `paths` (where the files
are). Every reader raises `serving.errors.DatasetError` naming the file, the line and the
problem. data/README.md documents the corpora, their licences and the label mappings.

The submodules are not imported here, so that `python -m pipelines.datasets.splits` runs the
module only once.
"""
