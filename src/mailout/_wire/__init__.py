"""Building blocks of :mod:`mailout.wire`: header fields and MIME bodies in wire form."""
