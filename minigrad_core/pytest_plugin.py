"""pytest plugin shipped with MiniGrad (placeholder until the extension kit lands)."""
