"""MkDocs hook: docstrings use Sphinx roles (``:class:`X```); the API reference shows them as code."""

import re

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):(?=<code>)")


def on_page_content(html: str, **_) -> str:
    """Drop the role prefix mkdocstrings leaves in front of the rendered ``<code>``."""
    return _ROLE.sub("", html)
