"""Measure the content inspector on the labelled corpus and write the figures into
``docs/sensitivity.md``.

    .venv/bin/python tests/inspect/sensitivity_report.py          # rewrite both measured sections
    .venv/bin/python tests/inspect/sensitivity_report.py --check  # exit 1 if the table is stale

Two generated sections, each between ``<!-- BEGIN measured: NAME -->`` / ``<!-- END ... -->``
markers: ``precision-recall`` (deterministic; ``test_inspect_corpus.py`` fails when it is out of
date) and ``cost`` (timings; machine dependent, so never checked by a test).
"""
from __future__ import annotations

import json
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from app.inspect import DETECTORS, Inspector  # noqa: E402
from build_corpus import CORPUS, CUSTOM_KEYWORDS, CUSTOM_PATTERNS  # noqa: E402

DOC = ROOT / "docs" / "sensitivity.md"


def corpus_inspector() -> Inspector:
    return Inspector(keywords=CUSTOM_KEYWORDS, patterns=CUSTOM_PATTERNS)


def load_corpus(path: Path = CORPUS) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def evaluate(inspector: Inspector, examples: list[dict]) -> dict:
    """Per-detector true/false positives and false negatives, example-level: a detector
    "fires" on an example when it has at least one finding in it."""
    tp, fp, fn = Counter(), Counter(), Counter()
    errors = []
    for ex in examples:
        got = set(inspector.inspect_text(ex["text"]).detectors)
        want = set(ex["expected"])
        for d in got & want:
            tp[d] += 1
        for d in got - want:
            fp[d] += 1
            errors.append(("FP", d, ex["text"]))
        for d in want - got:
            fn[d] += 1
            errors.append(("FN", d, ex["text"]))
    rows = {}
    for d in DETECTORS:
        if d == "overflow":
            continue
        rows[d] = _row(tp[d], fp[d], fn[d])
    total = _row(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return {"rows": rows, "total": total, "errors": errors, "examples": len(examples),
            "negatives": sum(1 for ex in examples if not ex["expected"])}


def _row(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall}


def render_table(metrics: dict) -> str:
    lines = [
        f"Corpus: {metrics['examples']} examples ({metrics['negatives']} with no expected "
        "finding), `tests/inspect/corpus.jsonl`.",
        "",
        "| detector | positives | TP | FP | FN | precision | recall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for d, r in metrics["rows"].items():
        lines.append(f"| `{d}` | {r['tp'] + r['fn']} | {r['tp']} | {r['fp']} | {r['fn']} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} |")
    t = metrics["total"]
    lines.append(f"| **all (micro-average)** | {t['tp'] + t['fn']} | {t['tp']} | {t['fp']} | "
                 f"{t['fn']} | **{t['precision']:.3f}** | **{t['recall']:.3f}** |")
    if metrics["errors"]:
        lines += ["", "Misses and false alarms on the corpus:", ""]
        for kind, d, text in metrics["errors"]:
            shown = text if len(text) <= 90 else text[:87] + "..."
            shown = shown.replace("\n", "\\n").replace("|", "\\|")
            lines.append(f"- {kind} `{d}`: `{shown}`")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- cost


def _messages() -> dict[str, str]:
    rnd = random.Random(7)
    examples = [ex["text"] for ex in load_corpus()]
    mix, n = [], 0
    while n < 10_000:
        t = rnd.choice(examples)
        mix.append(t)
        n += len(t) + 2
    words = ("the a of to and in that we it for on with as this our model request gateway "
             "latency provider answer question summary report user data review").split()
    prose = " ".join(rnd.choice(words) for _ in range(4000))
    code = (ROOT / "app" / "inspect" / "inspector.py").read_text()
    log = "\n".join(
        f'2026-11-25T10:{i % 60:02d}:{i * 7 % 60:02d}Z INFO req={rnd.getrandbits(64):016x} '
        f'path=/v1/chat/completions status=200 ms={rnd.randint(5, 900)} tokens={rnd.randint(10, 4000)}'
        for i in range(200))
    return {"English prose": prose[:10_000], "Python source": (code * 3)[:10_000],
            "JSON-ish access log": (log * 2)[:10_000],
            "corpus mix (dense findings)": "\n\n".join(mix)[:10_000]}


def measure_cost(repeat: int = 300) -> dict[str, float]:
    """CPU microseconds per 10 KB message (best of 5 rounds) with the default Inspector."""
    inspector = Inspector()
    out = {}
    for name, text in _messages().items():
        best = float("inf")
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(repeat):
                inspector.inspect_text(text)
            best = min(best, (time.process_time() - t0) / repeat)
        out[name] = best * 1e6
    return out


def measure_adversarial() -> list[tuple[str, float]]:
    """CPU milliseconds (best of 3) for each 1 MB input of the performance test."""
    from test_inspect_performance import ADVERSARIAL

    inspector = Inspector()
    out = []
    for name, text in ADVERSARIAL.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            inspector.inspect_text(text)
            best = min(best, time.process_time() - t0)
        out.append((name, best * 1000))
    return sorted(out, key=lambda x: -x[1])


def render_cost(cost: dict[str, float], adversarial: list[tuple[str, float]]) -> str:
    lines = ["| 10 KB message | CPU per `inspect_text` |", "|---|---:|"]
    for name, us in cost.items():
        lines.append(f"| {name} | {us:,.0f} µs |")
    times = sorted(ms for _, ms in adversarial)
    median = times[len(times) // 2]
    lines += ["", f"1 MB adversarial inputs ({len(adversarial)} of them, "
              "`test_inspect_performance.py`): median "
              f"{median:.0f} ms, slowest five:", "",
              "| 1 MB input | CPU |", "|---|---:|"]
    for name, ms in adversarial[:5]:
        lines.append(f"| {name} | {ms:.0f} ms |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- doc


def _section_re(name: str) -> re.Pattern:
    return re.compile(r"(<!-- BEGIN measured: %s -->\n)(.*?)(<!-- END measured: %s -->)"
                      % (re.escape(name), re.escape(name)), re.DOTALL)


def replace_section(doc: str, name: str, body: str) -> str:
    pattern = _section_re(name)
    if not pattern.search(doc):
        raise SystemExit(f"{DOC}: no '{name}' markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(3), doc)


def section(doc: str, name: str) -> str | None:
    m = _section_re(name).search(doc)
    return m.group(2)[:-1] if m and m.group(2) else None


def main(argv: list[str]) -> int:
    metrics = evaluate(corpus_inspector(), load_corpus())
    table = render_table(metrics)
    doc = DOC.read_text(encoding="utf-8")
    if "--check" in argv:
        ok = section(doc, "precision-recall") == table
        print("up to date" if ok else "stale: run tests/inspect/sensitivity_report.py")
        return 0 if ok else 1
    doc = replace_section(doc, "precision-recall", table)
    if "--no-cost" not in argv:
        doc = replace_section(doc, "cost", render_cost(measure_cost(), measure_adversarial()))
    DOC.write_text(doc, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
