"""LLM provider failover for Django: providers, breakers, fallback service, admin."""
