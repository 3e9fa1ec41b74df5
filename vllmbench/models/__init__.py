"""Pydantic models: one per concept, shared by the API, the store and the events."""
