"""The mobile app: its signed webhooks both ways (adapter.py, webhook.py, send.py)."""
