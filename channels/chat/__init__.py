"""Web chat: the widget's socket and page (adapter.py, socket.py), replies as visitor frames (send.py)."""
