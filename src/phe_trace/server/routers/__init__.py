"""HTTP routers of the key server, one per file, composed in ``phe_trace.server.app``."""
