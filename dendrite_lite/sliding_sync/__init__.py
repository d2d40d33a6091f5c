"""Simplified sliding sync (MSC4186): the unstable and the accepted v4 shapes on one engine."""
