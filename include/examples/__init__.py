"""Runnable examples for source kinds that need code (`kind: python`); see docs/sources.md."""
