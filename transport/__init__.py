"""Network transports shared by the relayer and the gateway (below both in the layering).

``transport.http1`` is the hot path's HTTP/1.1 client. It sits in its own package because both
hops use it — gateway → relayer and relayer → backend — while ``protocol/`` must stay free of
I/O and neither ``relayer`` nor ``gateway`` may import the other.
"""
