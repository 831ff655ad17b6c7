"""MiniGrad's nn plugin (in progress)."""
