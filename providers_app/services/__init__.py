"""Services: the only code that changes state or calls providers."""
