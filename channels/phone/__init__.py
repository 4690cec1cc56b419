"""Phone: Twilio and generic call webhooks, IVR and transcripts (adapter.py, telephony.py), <Say> replies (send.py)."""
