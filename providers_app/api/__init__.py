"""The OpenAI-compatible chat API: parsing, authentication, rendering and views."""
