"""Where messages go: each module defines an ``EmailBackend``, chosen by dotted path."""
