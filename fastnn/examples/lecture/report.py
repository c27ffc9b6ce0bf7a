"""Turning lecture Results into text (the console), one self-contained HTML page (plots
embedded as base64 PNG), the PNG files and one JSON file with every figure's data."""
import base64
import html
import json
import math
import os

import numpy as np

from fastnn.examples.lecture.common import Table

PAGE = "lecture.html"
DATA = "lecture.json"


def cell(value):
    """A table value as text: floats with 3 significant decimals (scientific when tiny or
    huge), integers with thousands separators."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.2e}"
        return f"{v:.3f}" if abs(v) < 100 else f"{v:,.1f}"
    return str(value)


def jsonable(value):
    """value with numpy scalars/arrays as Python numbers/lists, tuples as lists and
    non-finite floats as None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# -- text ---------------------------------------------------------------------------------
def text_table(table):
    rows = [[cell(v) for v in row] for row in table.rows]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(table.columns)]
    line = "  ".join("-" * w for w in widths)
    out = [table.caption, "  ".join(c.ljust(w) for c, w in zip(table.columns, widths)), line]
    out += ["  ".join(c.rjust(w) if _numeric(v) else c.ljust(w)
                      for c, w, v in zip(r, widths, row)) for r, row in zip(rows, table.rows)]
    return "\n".join(out)


def _numeric(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def text_report(result, note=True):
    """One experiment as text: title, claim, measurement, tables (and, if note, why
    there are no figures)."""
    parts = [f"== {result.title} ({result.name}, {result.seconds:.1f} s) ==",
             f"The slide: {result.claim}", f"This run: {result.measured}"]
    parts += [text_table(t) for t in result.tables]
    if note and result.plot_note:
        parts.append(f"(no figures: {result.plot_note})")
    return "\n\n".join(parts) + "\n"


# -- files --------------------------------------------------------------------------------
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 80em; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #555; font-size: 0.9em; }
section { border-top: 1px solid #ccc; margin-top: 2em; padding-top: 0.5em; }
.claim { background: #f3f6fb; padding: 0.6em 0.8em; border-left: 4px solid #4a78c2; }
.measured { background: #f4faf2; padding: 0.6em 0.8em; border-left: 4px solid #4b9a3c; }
.note { color: #a33; }
img { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def _html_table(table, cls=None):
    e = html.escape
    head = "".join(f"<th>{e(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{e(cell(v))}</td>' if _numeric(v)
                         else f"<td>{e(cell(v))}</td>" for v in row) + "</tr>"
        for row in table.rows)
    attr = f' class="{cls}"' if cls else ""
    return (f"<table{attr}><caption>{e(table.caption)}</caption><thead><tr>{head}</tr>"
            f"</thead><tbody>{body}</tbody></table>")


def _section(i, result):
    e = html.escape
    parts = [f'<section id="{e(result.name)}">',
             f"<h2>{i}. {e(result.title)}</h2>",
             f'<p class="claim"><strong>The slide:</strong> {e(result.claim)}</p>',
             f'<p class="measured"><strong>This run:</strong> {e(result.measured)}</p>']
    for fig in result.figures:
        if fig.png is not None:
            data = base64.b64encode(fig.png).decode("ascii")
            parts.append(f'<figure><img src="data:image/png;base64,{data}" '
                         f'alt="{e(fig.title)}"><figcaption>{e(fig.title)} '
                         f'({e(fig.name)}.png)</figcaption></figure>')
    if result.plot_note:
        parts.append(f'<p class="note">No plots: {e(result.plot_note)}</p>')
    parts += [_html_table(t) for t in result.tables]
    settings = Table("Settings", ["setting", "value"],
                     [[k, json.dumps(jsonable(v), ensure_ascii=False)]
                      for k, v in result.settings.items()])
    parts.append(f"<details><summary>Settings ({result.seconds:.1f} s)</summary>"
                 f"{_html_table(settings, 'settings')}</details>")
    parts.append("</section>")
    return "\n".join(parts)


def html_page(results, meta):
    """The whole report as one HTML document (str)."""
    e = html.escape
    info = ", ".join(f"{k}: {v}" for k, v in meta.items())
    toc = "".join(f'<li><a href="#{e(r.name)}">{e(r.title)}</a></li>' for r in results)
    sections = "\n".join(_section(i, r) for i, r in enumerate(results, 1))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>fastnn: the lecture, reproduced</title>\n<style>{_STYLE}</style>\n"
            f"</head>\n<body>\n<h1>The lecture, reproduced</h1>\n"
            f'<p class="meta">{e(info)}</p>\n<nav><ol>{toc}</ol></nav>\n{sections}\n'
            f"</body>\n</html>\n")


def as_json(results, meta):
    return {"meta": jsonable(meta),
            "experiments": {r.name: {"title": r.title, "claim": r.claim,
                                     "measured": r.measured, "seconds": r.seconds,
                                     "settings": jsonable(r.settings),
                                     "numbers": jsonable(r.numbers),
                                     "tables": [jsonable(vars(t)) for t in r.tables],
                                     "figures": {f.name: {"title": f.title,
                                                          "data": jsonable(f.data)}
                                                 for f in r.figures},
                                     "plot_note": r.plot_note}
                            for r in results}}


def write(results, out_dir, meta):
    """Write lecture.html, lecture.json and one PNG per figure into out_dir (created if
    needed). Returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for r in results:
        for fig in r.figures:
            if fig.png is not None:
                paths.append(os.path.join(out_dir, fig.name + ".png"))
                with open(paths[-1], "wb") as f:
                    f.write(fig.png)
    paths.append(os.path.join(out_dir, DATA))
    with open(paths[-1], "w", encoding="utf-8") as f:
        json.dump(as_json(results, meta), f, ensure_ascii=False, allow_nan=False)
    paths.append(os.path.join(out_dir, PAGE))
    with open(paths[-1], "w", encoding="utf-8") as f:
        f.write(html_page(results, meta))
    return paths
