"""Feedback: a satisfaction survey after each resolved conversation, and the callback tasks
low scores and complaints open (docs/feedback.md). `rules.py` is the pure logic, `stage.py`
the worker stage around it."""
