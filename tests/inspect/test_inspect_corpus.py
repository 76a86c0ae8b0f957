"""Precision and recall of the content inspector on the labelled corpus.

The corpus (``corpus.jsonl``, built by ``build_corpus.py``) holds realistic positives for every
detector and hard negatives; ``sensitivity_report.py`` renders the measured table into
``docs/sensitivity.md``, and the last test here fails when that table is stale.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build_corpus  # noqa: E402
import sensitivity_report as report  # noqa: E402

from app.inspect import DETECTORS  # noqa: E402

OVERALL_FLOOR = 0.95
DETECTOR_FLOOR = 0.90
MIN_POSITIVES = 8
EVALUATED = [d for d in DETECTORS if d != "overflow"]


@pytest.fixture(scope="module")
def examples():
    return report.load_corpus()


@pytest.fixture(scope="module")
def metrics(examples):
    return report.evaluate(report.corpus_inspector(), examples)


def test_corpus_is_well_formed(examples):
    assert len(examples) >= 300
    for ex in examples:
        assert set(ex) == {"text", "expected"}
        assert isinstance(ex["text"], str) and ex["text"]
        assert ex["expected"] == sorted(set(ex["expected"]))
        assert set(ex["expected"]) <= set(EVALUATED), ex
    negatives = [ex for ex in examples if not ex["expected"]]
    assert len(negatives) >= 150
    assert len({ex["text"] for ex in examples}) == len(examples)


def test_corpus_file_is_what_the_builder_makes():
    lines = (HERE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == build_corpus.build(), "run tests/inspect/build_corpus.py"


def test_every_detector_has_positives(examples):
    counts = Counter(d for ex in examples for d in ex["expected"])
    thin = {d: counts[d] for d in EVALUATED if counts[d] < MIN_POSITIVES}
    assert not thin, thin


def test_overall_precision_and_recall(metrics):
    total = metrics["total"]
    assert total["precision"] >= OVERALL_FLOOR, metrics["errors"]
    assert total["recall"] >= OVERALL_FLOOR, metrics["errors"]


@pytest.mark.parametrize("detector", EVALUATED)
def test_detector_precision_and_recall(metrics, detector):
    row = metrics["rows"][detector]
    errors = [e for e in metrics["errors"] if e[1] == detector]
    assert row["precision"] >= DETECTOR_FLOOR, errors
    assert row["recall"] >= DETECTOR_FLOOR, errors


def test_documented_table_is_current(metrics):
    doc = report.DOC.read_text(encoding="utf-8")
    assert report.section(doc, "precision-recall") == report.render_table(metrics), (
        "docs/sensitivity.md is stale: run .venv/bin/python tests/inspect/sensitivity_report.py")
