"""The auth service: credentials, roles, tokens and the user lifecycle events.

Layers, each importing only those before it: `domain` ← `ports`, `handlers` ← adapters
(`storage`, `event_payloads`, `passwords`, `ratelimit`, `api`) ← `app` (composition) ←
`main` (the process entry point) and `roles` (the operator's command).
"""
