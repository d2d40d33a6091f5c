"""Third-party identifiers (email): validation sessions, binding, password reset."""
