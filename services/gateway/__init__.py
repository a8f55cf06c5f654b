"""The gateway service: the implementation of `contracts/openapi/gateway-service.yaml`, built on
the code `accord generate` writes from it (`generated/gateway/`). It owns no data: each overview
is composed from the auth and user services' answers."""
