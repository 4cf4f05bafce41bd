"""Turning untrusted text into inert Markdown, and the Markdown report into one HTML file.

The Markdown report is the source; the HTML is derived from it by a CommonMark parser with
raw HTML switched off, so nothing in a transcript can become markup. The HTML document is
self-contained (no external assets), printable, and opens with a table of contents.
"""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# The characters that can open Markdown or HTML inside a line or a table cell; other
# punctuation stays as written, so the plain text reads naturally.
_MARKUP = re.compile(r"([\\`*_\[\]<>|#!&~])")
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def visible_controls(text: str) -> str:
    """Control characters (other than tab and newline) as their visible Unicode symbols."""
    return _CONTROL.sub(
        lambda m: "\u2421" if m.group() == "\x7f" else chr(0x2400 + ord(m.group())), text
    )


def verbatim(text: str) -> str:
    """Untrusted text as a fenced block that nothing inside it can close or escape."""
    text = visible_controls(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def quoted(text: str) -> str:
    """People's Markdown as a block quote: formatting kept, raw HTML and controls inert."""
    lines = visible_controls(text).replace("<", "&lt;").splitlines() or [""]
    return "\n".join(f"> {line}" for line in lines)


def inline(text: object) -> str:
    """Untrusted text inside a line or a table cell: every markup character escaped."""
    flat = " ".join(visible_controls(str(text)).split())
    return _MARKUP.sub(r"\\\1", flat)


STYLE = """
body { font: 16px/1.55 Georgia, 'Times New Roman', serif; max-width: 52em; margin: 2em auto;
       padding: 0 1em; color: #1a1a1a; background: #fff; }
h1, h2, h3, h4 { font-family: Helvetica, Arial, sans-serif; line-height: 1.25; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .5em; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
pre { background: #f6f6f4; border-left: 3px solid #b8860b; padding: .6em .8em;
      white-space: pre-wrap; overflow-wrap: anywhere; }
code { font-family: 'DejaVu Sans Mono', Menlo, monospace; font-size: .9em;
       overflow-wrap: anywhere; }
nav.toc { border: 1px solid #ddd; padding: .5em 1.5em; margin: 1em 0 2em; }
nav.toc ol { padding-left: 1.2em; }
@media print { body { max-width: none; margin: 0; } nav.toc { page-break-after: always; }
               pre, table { page-break-inside: avoid; } a { color: inherit; } }
"""


def anchor(heading: str) -> str:
    """The anchor of a heading, as GitHub and this module's HTML both derive it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def to_html(markdown: str, title: str) -> str:
    """A self-contained, printable HTML document of the Markdown report, with contents."""
    tokens = _MARKDOWN.parse(markdown)
    contents: list[tuple[int, str, str]] = []
    used: set[str] = set()
    for index, token in enumerate(tokens):
        if token.type != "heading_open":
            continue
        text = _text_of(tokens[index + 1])
        slug = base = anchor(text)
        suffix = 0
        while slug in used:  # GitHub numbers repeated headings the same way
            suffix += 1
            slug = f"{base}-{suffix}"
        used.add(slug)
        token.attrSet("id", slug)
        if token.tag in ("h2", "h3"):
            contents.append((int(token.tag[1]), slug, text))
    body = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
    toc = "".join(
        f'<li style="margin-left:{(level - 2) * 1.2}em"><a href="#{anchor}">'
        f"{html.escape(text)}</a></li>\n"
        for level, anchor, text in contents
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n"
        f'<nav class="toc"><strong>Contents</strong>\n<ol>\n{toc}</ol>\n</nav>\n'
        f"{body}</body>\n</html>\n"
    )


def _text_of(inline_token: Token) -> str:
    return "".join(child.content for child in inline_token.children or [])
