"""Consumer-driven contracts (Pact V4) between the services: the pacts the user and
notification services hold the auth service to, and the auth service verifying them."""
