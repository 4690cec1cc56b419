"""The agent desk (/desk) and the ops console (/ops): static pages, no build step.

They hold no privilege of their own: the pages are public, and everything they show comes
from the API with the credential the user logs in with (docs/desk.md, docs/security.md).
"""
