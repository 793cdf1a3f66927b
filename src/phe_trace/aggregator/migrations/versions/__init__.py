"""Revisions of the aggregator's tables."""
