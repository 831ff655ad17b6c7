"""Entry point of the nn plugin (in progress)."""
