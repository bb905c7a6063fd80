"""Model answers as safe Markdown: code blocks and lists, never raw HTML or script links.

markdown-it escapes HTML when ``html`` is off, and its link check refuses
``javascript:``, ``vbscript:``, ``file:`` and ``data:`` URLs. Images are off, so an
answer cannot make the reviewer's browser fetch anything.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markupsafe import Markup

_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False}).disable("image")


def safe_markdown(text: str) -> Markup:
    return Markup(_renderer.render(text))
