"""Tools for scenario authors: lint, state diagrams, the JSON Schema and transcript tests.

Pure Python on top of the engine (no trio, no store), used by `intercept scenario ...`.
"""
