"""Shared hub services and their tenants: tokens (this issue's foundation), registries, the lab hub."""
