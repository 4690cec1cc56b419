"""Email: the SMTP listener and MIME parsing (adapter.py, smtp.py, parse.py), threaded replies (send.py)."""
