"""What a reader of a report sees, measured in headless Chromium: elements wider than the page or window.

Shared by the tests of both reports (tests/ is on sys.path). The page is loaded over the DevTools protocol
(``zi_warehouse.reports.chromium.Browser.evaluate``) in a window exactly as wide as the printable area of
the page's ``@page`` rule (A4 minus the margins), laid out for print: that is the layout Chromium
paginates when it prints the PDF, so an element wider than this window is cut off at the page's edge.
On screen the same check runs with the width of a laptop window.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

PX_PER_MM = 96 / 25.4
A4_WIDTH_MM = 210.0

#: Every visible element whose box reaches past the window's right (or left) edge, and every element whose
#: content is wider than its own box (text running into the next cell, or cut off by overflow: hidden).
OVERFLOW_SCRIPT = r"""
(() => {
  for (const d of document.querySelectorAll('details')) d.open = true;  // what a reader can unfold is measured too
  const width = document.documentElement.clientWidth;
  const describe = (el) => {
    let path = [];
    for (let e = el; e && e !== document.body && path.length < 4; e = e.parentElement) {
      let name = e.tagName.toLowerCase();
      if (e.id) name += '#' + e.id;
      for (const a of ['data-table', 'data-chart', 'data-municipality', 'class']) {
        if (e.getAttribute && e.getAttribute(a)) { name += `[${a}=${e.getAttribute(a)}]`; break; }
      }
      path.unshift(name);
    }
    return path.join(' > ') + ' "' + (el.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 60) + '"';
  };
  const found = [], reported = new Set();
  for (const el of document.body.querySelectorAll('*')) {
    if (el.parentElement && reported.has(el.parentElement)) { reported.add(el); continue; }  // its parent is listed
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > width + 0.5 || r.left < -0.5) {
      found.push({kind: 'wider than the page', element: describe(el), left: r.left, right: r.right, width: width});
      reported.add(el);
      continue;
    }
    const isSvg = el instanceof SVGElement;
    if (!isSvg && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && style.display !== 'inline') {
      found.push({kind: 'content wider than its box', element: describe(el), left: r.left, right: r.right,
                  width: el.clientWidth, content: el.scrollWidth});
    }
  }
  return {found: found, scrollWidth: document.documentElement.scrollWidth, width: width,
          height: document.documentElement.scrollHeight};
})()
"""


def printable_width_px(html: str) -> int:
    """Width of the printable area of the page's ``@page { size: A4; margin: ... }`` rule, in CSS px."""
    rule = re.search(r"@page\s*\{([^}]*)\}", html)
    assert rule, "the report has no @page rule: its printed page size is the browser's default"
    body = rule.group(1)
    assert re.search(r"size:\s*A4(\s+portrait)?\s*;", body), f"the report is not printed on A4 portrait: {body}"
    margins = re.search(r"margin:\s*([^;]+);", body)
    values = [float(v.removesuffix("mm")) for v in margins.group(1).split()] if margins else [0.0]
    assert all(v >= 0 for v in values)
    # CSS shorthand: one value for all sides; two or three: the second is left and right; four: top right bottom left
    left, right = (
        (values[0], values[0])
        if len(values) == 1
        else (values[3], values[1])
        if len(values) == 4
        else (values[1], values[1])
    )
    return int((A4_WIDTH_MM - left - right) * PX_PER_MM)


def overflowing_elements(browser, html_path: Path, *, media: str, width_px: int) -> dict:
    """The script's findings for ``html_path`` laid out for ``media`` in a ``width_px`` wide window."""
    return browser.evaluate(html_path, OVERFLOW_SCRIPT, width_px=width_px, media=media)


def describe(findings: dict, limit: int = 15) -> str:
    lines = [
        f"{f['kind']}: {f['element']} (right edge {f['right']:.0f} px, window {f['width']} px"
        + (f", content {f['content']} px" if "content" in f else "")
        + ")"
        for f in findings["found"][:limit]
    ]
    more = len(findings["found"]) - limit
    return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))


#: Pairs of text elements inside one chart (<svg data-chart>) whose boxes intersect: labels written over
#: each other, e.g. rotated tick labels over the chart's "Abb. n" line. A shared area below ``tolerance`` px²
#: (glyph boxes touching) does not count.
TEXT_OVERLAP_SCRIPT = r"""
((tolerance) => {
  const found = [];
  for (const svg of document.querySelectorAll('svg[data-chart]')) {
    const texts = [...svg.querySelectorAll('text')].map(t => ({text: t.textContent.trim(), r: t.getBoundingClientRect()}))
      .filter(t => t.text && t.r.width > 0 && t.r.height > 0);
    for (let i = 0; i < texts.length; i++) {
      for (let j = i + 1; j < texts.length; j++) {
        const a = texts[i].r, b = texts[j].r;
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 0 && h > 0 && w * h > tolerance) {
          found.push({chart: svg.getAttribute('data-chart'), a: texts[i].text, b: texts[j].text, area: w * h});
        }
      }
    }
  }
  return found;
})(TOLERANCE)
"""


def overlapping_chart_texts(browser, html_path: Path, *, width_px: int, tolerance_px2: float = 4.0) -> list[dict]:
    """Text elements of a chart that are drawn over each other, laid out for print in a ``width_px`` window."""
    script = TEXT_OVERLAP_SCRIPT.replace("TOLERANCE", repr(tolerance_px2))
    return browser.evaluate(html_path, script, width_px=width_px, media="print")


class _TextCollector(HTMLParser):
    #: Elements whose text a reader sees apart from its neighbours' (inline ones such as <a>, <span> join).
    SEPARATE = {
        "p",
        "div",
        "section",
        "header",
        "nav",
        "li",
        "td",
        "th",
        "tr",
        "caption",
        "figcaption",
        "summary",
        "h1",
        "h2",
        "h3",
        "h4",
        "br",
        "text",
        "ol",
        "ul",
        "table",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script", "title"):
            self._skip += 1
        if tag in self.SEPARATE:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in ("style", "script", "title") and self._skip:
            self._skip -= 1
        if tag in self.SEPARATE:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    """The text a reader sees (chart labels included), without styles and scripts."""
    collector = _TextCollector()
    collector.feed(html)
    return " ".join("".join(collector.parts).split())
