"""The dApp-facing server (to be built, issue "Gateway").

Will own: routing by service, API keys and limits, session lookup, relayer selection,
retries, hedging, caching, batches and WebSocket subscriptions.
"""
