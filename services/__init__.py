"""Accord services: auth, user and notification, and the kit they share."""
