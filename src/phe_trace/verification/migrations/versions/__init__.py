"""Revisions of the verification service's schema."""
