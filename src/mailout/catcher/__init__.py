"""``mailout serve``: a local mail catcher (SMTP in, web inbox and JSON API out).

The store (``store.py``) and the parser (``parse.py``) use the standard library only. The SMTP
server (``smtp.py``), the web app (``web.py``) and ``Catcher`` (``server.py``) need the
``server`` extra: ``pip install "mailout[server]"``.
"""

from __future__ import annotations

from mailout.catcher.store import MessageStore, StoreEvent, Summary

__all__ = ["MessageStore", "StoreEvent", "Summary"]
