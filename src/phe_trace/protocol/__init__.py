"""Wire formats: the advertisement payload, export files, the publish API, certificates.

Layer 0 above ``crypto``: imports only ``phe_trace.crypto`` (and the error root).
Shared value types that two roles need live here. Submodules are imported explicitly
(``from phe_trace.protocol import advertisement``); this package re-exports nothing
so that importing one format never pulls in another's dependencies.
"""
