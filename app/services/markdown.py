"""Markdown for untrusted model output: rendered without raw HTML, then sanitised.

Two layers, so neither has to be perfect alone: markdown-it-py with `html` off turns every
`<tag>` the model writes into text and refuses `javascript:`-style links; nh3 (the Rust
ammonia sanitiser) then keeps only an allow-list of tags, attributes and URL schemes. Code
blocks are highlighted by Pygments into class-only `<span>`s (no inline styles).
"""
from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape
from pygments import highlight as _pyg_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

MAX_CHARS = 200_000  # larger answers are shown as plain text (rendering stays cheap)

TAGS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "s", "del", "code",
        "pre", "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
        "span", "div"}
ATTRIBUTES = {"a": {"href", "title", "class"}, "code": {"class"}, "span": {"class"}, "div": {"class"},
              "pre": {"class"}, "ol": {"start"}}
SCHEMES = {"http", "https", "mailto"}
_FORMATTER = HtmlFormatter(nowrap=True, classprefix="tok-")


def _highlight(code: str, lang: str, _attrs) -> str:
    try:
        lexer = get_lexer_by_name(lang.strip().split()[0]) if lang and lang.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""  # markdown-it escapes the code itself
    return _pyg_highlight(code, lexer, _FORMATTER)


_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                "highlight": _highlight}).enable(["table", "strikethrough"])


def _image_as_link(tokens, idx, _options, _env) -> str:
    """Images become plain links: a remote image would load by itself, and a model can be
    talked into putting secrets in its URL (markdown-image exfiltration)."""
    token = tokens[idx]
    src = token.attrGet("src") or ""
    alt = "".join(child.content for child in token.children or []) or "image"
    return f'<a href="{escape(src)}" class="md-image">[image: {escape(alt)}]</a>'


_md.renderer.rules["image"] = _image_as_link


def _filter_attr(tag: str, attr: str, value: str) -> str | None:
    """Only `language-*`, `tok-*` and `md-*` classes survive (no inline styles at all)."""
    if attr == "class":
        kept = [c for c in value.split() if c.startswith(("language-", "tok-", "md-"))]
        return " ".join(kept) or None
    return value


def render(text: str | None) -> Markup:
    """Safe HTML for a model's answer (never trusts the text)."""
    if not text:
        return Markup("")
    if len(text) > MAX_CHARS:
        return Markup('<pre class="md-plain">') + escape(text) + Markup("</pre>")
    html = _md.render(text)
    clean = nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes=SCHEMES,
                      link_rel="noopener noreferrer nofollow", attribute_filter=_filter_attr,
                      strip_comments=True)
    return Markup(clean)  # nosec B704 # nh3 has sanitised it to the TAGS/ATTRIBUTES/SCHEMES allow-lists
