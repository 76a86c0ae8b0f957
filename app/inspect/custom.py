"""Admin-defined detectors: keywords and regexes, validated once at construction.

Keywords are matched case-insensitively as whole words (a keyword's inner spaces match any run of
whitespace), as one alternation over the lower-cased text. Regexes are compiled with :mod:`re`
and refused with a :class:`PatternError` (a ``ValueError``) naming the entry when they do not
compile, or when their structure allows catastrophic backtracking:

* a repeat nested in an unbounded repeat (``(a+)+``, ``(\\w*\\s?)*``, ``(\\d+\\.\\d+)+``):
  exponential, unless the inner repeat is followed by a character it cannot match
  (``([a-z]+\\.)+`` is fine);
* alternatives that can start with the same character, or match nothing, inside an unbounded
  repeat (``(a|aa)+``);
* a back-reference (no linear bound);
* a lookaround containing an unbounded repeat (re-run at every position).

Possessive quantifiers (``a++``) and atomic groups (``(?>...)``) never backtrack and are
allowed anywhere. A pattern that passes those rules is then run on growing adversarial probes
(runs of common characters and of the characters and words the pattern mentions, up to 64 KB,
with and without a breaking character) and refused if one costs more than 50 ms of CPU: that
catches the polynomial cases (``.*x.*y``, ``\\d+\\d+z``, a leading repeated group) the
structural rules let through.

A leading unbounded repeat of a single class (``\\w+@corp\\.com``, ``.*secret``, ``a++b``)
would make a search quadratic (the engine retries the run from every position); such a pattern
runs with a lookbehind guard ``(?<!C)`` in front, which starts matches only where a run starts.
For a leading ``C+``/``C*``/``C++`` that never changes the leftmost match, so the matches are
the same (``test_leading_repeat_guard_keeps_the_same_matches``).
"""
from __future__ import annotations

import re
import time

try:  # Python 3.11+: the parser lives in re._parser
    from re import _parser as sre_parse
    from re import _constants as sre_c
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore
    import sre_constants as sre_c  # type: ignore

MAXREPEAT = sre_c.MAXREPEAT
_REPEATS = {sre_c.MAX_REPEAT, sre_c.MIN_REPEAT}
_POSSESSIVE = getattr(sre_c, "POSSESSIVE_REPEAT", None)
_ATOMIC = getattr(sre_c, "ATOMIC_GROUP", None)

MAX_PATTERN_LENGTH = 1000
MAX_PATTERNS = 200
MAX_KEYWORDS = 5000
PROBE_BUDGET_S = 0.05  # CPU per probe string; a linear pattern needs a few ms on 64 KB
PROBE_LENGTH = 65_536  # a quadratic pattern takes ~0.5 s here (and ~0.3 ms per KB on 1 MB)


class PatternError(ValueError):
    """An admin-defined pattern or keyword was refused (the message says which and why)."""


# --------------------------------------------------------------------------- keywords


def compile_keywords(keywords) -> re.Pattern | None:
    """One regex matching any keyword in text lower-cased by ``lower_aligned``."""
    words = []
    seen = set()
    for i, kw in enumerate(keywords or ()):
        if not isinstance(kw, str):
            raise PatternError(f"custom keyword #{i + 1} is not a string")
        kw = " ".join(kw.split())
        if not kw:
            raise PatternError(f"custom keyword #{i + 1} is empty")
        if len(kw) > MAX_PATTERN_LENGTH:
            raise PatternError(f"custom keyword #{i + 1} is longer than {MAX_PATTERN_LENGTH}")
        kw = kw.replace("\u0130", "i").lower()  # the text is lower-cased the same way
        if kw not in seen:
            seen.add(kw)
            words.append(kw)
    if len(words) > MAX_KEYWORDS:
        raise PatternError(f"at most {MAX_KEYWORDS} custom keywords are allowed")
    if not words:
        return None
    words.sort(key=len, reverse=True)  # longest first: "acme corp" before "acme"
    alts = []
    for w in words:
        # the first character is consumed before the whole-word lookbehind, so every
        # alternative starts with a literal and the engine skips positions that cannot match
        first, rest = w[0], w[1:]
        body = re.escape(first)
        if first.isalnum() or first == "_":
            body += r"(?<!\w.)"
        body += r"\s+".join(re.escape(part) for part in rest.split(" "))
        if w[-1].isalnum() or w[-1] == "_":
            body += r"(?!\w)"
        alts.append(body)
    src = "|".join(alts)
    return re.compile(src, re.DOTALL)


# --------------------------------------------------------------------------- patterns


def _first_chars(seq, depth=0):
    """A set of possible first characters of a parsed sequence, or None for 'anything'."""
    if depth > 20:
        return None
    for op, av in seq:
        if op == sre_c.LITERAL:
            return {av}
        if op == sre_c.NOT_LITERAL or op == sre_c.ANY or op == sre_c.IN:
            if op == sre_c.IN:
                chars = set()
                for iop, iav in av:
                    if iop == sre_c.LITERAL:
                        chars.add(iav)
                    elif iop == sre_c.RANGE and iav[1] - iav[0] < 512:
                        chars.update(range(iav[0], iav[1] + 1))
                    else:
                        return None
                return chars
            return None
        if op == sre_c.SUBPATTERN:
            return _first_chars(av[-1], depth + 1)
        if op == sre_c.BRANCH:
            acc = set()
            for alt in av[1]:
                f = _first_chars(alt, depth + 1)
                if f is None:
                    return None
                acc |= f
            return acc
        if op in _REPEATS or op == _POSSESSIVE:
            f = _first_chars(av[2], depth + 1)
            if f is None or av[0] == 0:
                return None  # optional: the next item could come first too
            return f
        if op in (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT):
            continue
        return None
    return set()


def _contains_unbounded_repeat(seq) -> bool:
    for op, av in seq:
        if op in _REPEATS or op == _POSSESSIVE:
            if av[1] == MAXREPEAT or av[1] > 32:
                return True
            if _contains_unbounded_repeat(av[2]):
                return True
        elif op == sre_c.SUBPATTERN:
            if _contains_unbounded_repeat(av[-1]):
                return True
        elif op == _ATOMIC:
            if _contains_unbounded_repeat(av):
                return True
        elif op == sre_c.BRANCH:
            if any(_contains_unbounded_repeat(a) for a in av[1]):
                return True
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            if _contains_unbounded_repeat(av[1]):
                return True
    return False


# a sample alphabet for set arithmetic on character classes: Latin-1 and Latin Extended, plus
# a few non-ASCII spaces, digits and letters
_SAMPLE = [chr(c) for c in range(0, 0x250)] + ["\u2028", "\u3000", "\u0661", "\u4e00"]


def _category(cat: int, c: str) -> bool:
    if cat == sre_c.CATEGORY_DIGIT:
        return c.isdecimal()
    if cat == sre_c.CATEGORY_NOT_DIGIT:
        return not c.isdecimal()
    if cat == sre_c.CATEGORY_SPACE:
        return c.isspace()
    if cat == sre_c.CATEGORY_NOT_SPACE:
        return not c.isspace()
    if cat == sre_c.CATEGORY_WORD:
        return c.isalnum() or c == "_"
    if cat == sre_c.CATEGORY_NOT_WORD:
        return not (c.isalnum() or c == "_")
    return True  # unknown: assume it matches


def _item_chars(op, av, ignorecase: bool):
    """Characters (from a sample alphabet) one single-character item can match; None if the
    item is not a single-character item."""
    if op == sre_c.LITERAL:
        chars = {chr(av)}
    elif op == sre_c.NOT_LITERAL:
        chars = {c for c in _SAMPLE if c != chr(av)}
    elif op == sre_c.ANY:
        chars = set(_SAMPLE)
    elif op == sre_c.IN:
        neg = False
        chars = set()
        for iop, iav in av:
            if iop == sre_c.NEGATE:
                neg = True
            elif iop == sre_c.LITERAL:
                chars.add(chr(iav))
            elif iop == sre_c.RANGE:
                chars.update(chr(x) for x in range(iav[0], min(iav[1], 0x10FFFF) + 1)
                             if x < 0x250 or iav[1] - iav[0] < 4096)
            elif iop == sre_c.CATEGORY:
                chars.update(c for c in _SAMPLE if _category(iav, c))
            else:
                chars.update(_SAMPLE)
        if neg:
            chars = {c for c in _SAMPLE if c not in chars}
    else:
        return None
    if ignorecase:
        chars |= {c.swapcase() for c in chars if len(c.swapcase()) == 1}
    return chars


def _flatten(seq):
    out = []
    for op, av in seq:
        if op == sre_c.SUBPATTERN:
            out.extend(_flatten(av[-1]))
        else:
            out.append((op, av))
    return out


def _mandatory_first(item, ignorecase):
    """First-character set of an item that must match at least one character, else None."""
    op, av = item
    chars = _item_chars(op, av, ignorecase)
    if chars is not None:
        return chars
    if (op in _REPEATS or op == _POSSESSIVE) and av[0] >= 1 and len(av[2]) == 1:
        return _item_chars(*av[2][0], ignorecase)
    return None


def _check_unbounded_body(body, where: str, ignorecase: bool) -> None:
    """The body of an unbounded repeat must split a string in one way only."""
    items = _flatten(body)
    for i, (op, av) in enumerate(items):
        if op == sre_c.BRANCH:
            seen: set = set()
            for alt in av[1]:
                f = _first_chars(alt)
                if not f or f & seen:  # unknown, empty (can match nothing) or overlapping
                    raise PatternError(
                        f"{where}: alternatives that can start with the same character (or "
                        "match nothing) inside an unbounded repeat, like (a|aa)+, can "
                        "backtrack exponentially; make them disjoint or use an atomic group "
                        "(?>...)")
                seen |= f
                if _contains_unbounded_repeat([x for x in _flatten(alt)
                                               if x[0] != _POSSESSIVE and x[0] != _ATOMIC]):
                    raise PatternError(
                        f"{where}: a repeat inside alternatives inside an unbounded repeat can "
                        "backtrack exponentially; use a possessive quantifier or (?>...)")
        elif op in _REPEATS and av[1] > 1:
            inner = av[2]
            rc = _item_chars(*inner[0], ignorecase) if len(inner) == 1 else None
            nxt = _mandatory_first(items[(i + 1) % len(items)], ignorecase) \
                if len(items) > 1 else None
            if rc is None or nxt is None or rc & nxt:
                raise PatternError(
                    f"{where}: a repeat inside an unbounded repeat (like (a+)+ or (\\d+\\.\\d+)+) "
                    "can backtrack exponentially; use a possessive quantifier (a++) or an "
                    "atomic group (?>...), or follow the inner repeat with a character it "
                    "cannot match")


def _check_structure(seq, where: str, ignorecase: bool) -> None:
    for op, av in seq:
        if op in _REPEATS:
            lo, hi, body = av
            if hi == MAXREPEAT or hi > 32:
                _check_unbounded_body(body, where, ignorecase)
            _check_structure(body, where, ignorecase)
        elif op == _POSSESSIVE or op == _ATOMIC:
            continue  # never backtracks into its body
        elif op == sre_c.SUBPATTERN:
            _check_structure(av[-1], where, ignorecase)
        elif op == sre_c.BRANCH:
            for alt in av[1]:
                _check_structure(alt, where, ignorecase)
        elif op in (sre_c.GROUPREF, getattr(sre_c, "GROUPREF_EXISTS", None)):
            raise PatternError(f"{where}: back-references are not allowed")
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            if _contains_unbounded_repeat(av[1]):
                raise PatternError(f"{where}: an unbounded repeat inside a lookaround is "
                                   "re-run at every position; bound it (e.g. {0,50})")
            _check_structure(av[1], where, ignorecase)


def _leading_class(parsed) -> str | None:
    """Source of ``(?<!C)`` when the pattern starts with an unbounded greedy/lazy C+ or C*."""
    if not parsed.data:
        return None
    op, av = parsed.data[0]
    if (op not in _REPEATS and op != _POSSESSIVE) or av[1] != MAXREPEAT or len(av[2]) != 1:
        return None
    iop, iav = av[2][0]
    if iop == sre_c.ANY:
        return r"(?<![^\n])" if not (parsed.state.flags & re.DOTALL) else None
    if iop == sre_c.LITERAL:
        return "(?<!%s)" % re.escape(chr(iav))
    if iop == sre_c.NOT_LITERAL:
        return "(?<![^%s])" % re.escape(chr(iav))
    if iop == sre_c.IN:
        parts = []
        neg = False
        for cop, cav in iav:
            if cop == sre_c.NEGATE:
                neg = True
            elif cop == sre_c.LITERAL:
                parts.append(re.escape(chr(cav)))
            elif cop == sre_c.RANGE:
                parts.append(re.escape(chr(cav[0])) + "-" + re.escape(chr(cav[1])))
            elif cop == sre_c.CATEGORY:
                parts.append(_CATEGORY_SRC.get(cav, ""))
                if not parts[-1]:
                    return None
            else:
                return None
        return "(?<![%s%s])" % ("^" if neg else "", "".join(parts))
    return None


_CATEGORY_SRC = {
    sre_c.CATEGORY_DIGIT: r"\d", sre_c.CATEGORY_NOT_DIGIT: r"\D",
    sre_c.CATEGORY_SPACE: r"\s", sre_c.CATEGORY_NOT_SPACE: r"\S",
    sre_c.CATEGORY_WORD: r"\w", sre_c.CATEGORY_NOT_WORD: r"\W",
}


def _literal_chars(seq, acc: set) -> None:
    for op, av in seq:
        if op == sre_c.LITERAL:
            acc.add(chr(av))
        elif op == sre_c.IN:
            for iop, iav in av:
                if iop == sre_c.LITERAL:
                    acc.add(chr(iav))
                elif iop == sre_c.RANGE:
                    acc.add(chr(iav[0]))
                    acc.add(chr(iav[1]))
        elif op in _REPEATS or op == _POSSESSIVE:
            _literal_chars(av[2], acc)
        elif op == sre_c.SUBPATTERN:
            _literal_chars(av[-1], acc)
        elif op == _ATOMIC:
            _literal_chars(av, acc)
        elif op == sre_c.BRANCH:
            for a in av[1]:
                _literal_chars(a, acc)
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            _literal_chars(av[1], acc)


_PROBE_LENGTHS = (16, 24, 32, 40, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096, 16384,
                  PROBE_LENGTH)


def _literal_runs(seq, acc: list) -> None:
    """Runs of consecutive literal characters (the words a pattern is built from)."""
    run = []
    for op, av in seq:
        if op == sre_c.LITERAL:
            run.append(chr(av))
            continue
        if len(run) > 1:
            acc.append("".join(run))
        run = []
        if op in _REPEATS or op == _POSSESSIVE:
            _literal_runs(av[2], acc)
        elif op == sre_c.SUBPATTERN:
            _literal_runs(av[-1], acc)
        elif op == _ATOMIC:
            _literal_runs(av, acc)
        elif op == sre_c.BRANCH:
            for a in av[1]:
                _literal_runs(a, acc)
    if len(run) > 1:
        acc.append("".join(run))


def _probe_units(parsed) -> list[str]:
    chars: set = set()
    _literal_chars(parsed.data, chars)
    units = ["a", "0", " ", "aA0_", "a ", "0 ", "a@.", "a.", "0-", "\t\n"]
    picks = sorted(c for c in chars if c.isprintable() or c in "\t\n")[:10]
    units.extend(picks)
    if len(picks) > 1:
        units.append("".join(picks))
    runs: list = []
    _literal_runs(parsed.data, runs)
    units.extend(r for r in dict.fromkeys(runs) if r.isprintable())
    return units[:40]


def _cpu_time(compiled: re.Pattern, probe: str) -> float:
    t0 = time.process_time()  # CPU time: waiting for a busy core does not count
    for _ in compiled.finditer(probe):
        pass
    return time.process_time() - t0


def _probe(compiled: re.Pattern, parsed, where: str) -> None:
    """Run the pattern on growing adversarial strings; refuse it if one gets slow (confirmed
    by two more runs, so that a busy machine does not refuse a good pattern)."""
    for unit in _probe_units(parsed):
        for n in _PROBE_LENGTHS:
            body = (unit * (n // len(unit) + 1))[:n]
            for probe in (body, body + "!\x00"):
                if _cpu_time(compiled, probe) > PROBE_BUDGET_S and min(
                        _cpu_time(compiled, probe), _cpu_time(compiled, probe)) > PROBE_BUDGET_S:
                    raise PatternError(
                        f"{where} is too slow on long inputs (possible catastrophic "
                        "backtracking): make it start with a literal, bound its repeats or "
                        "use possessive quantifiers / atomic groups")


_GLOBAL_FLAGS = re.compile(r"(?:\(\?[aiLmsux]+\))+")


def compile_pattern(src: str, index: int) -> re.Pattern:
    where = f"custom pattern #{index + 1}"
    if not isinstance(src, str):
        raise PatternError(f"{where} is not a string")
    if not src:
        raise PatternError(f"{where} is empty")
    if len(src) > MAX_PATTERN_LENGTH:
        raise PatternError(f"{where} is longer than {MAX_PATTERN_LENGTH} characters")
    try:
        compiled = re.compile(src)
        parsed = sre_parse.parse(src)
    except re.error as exc:
        raise PatternError(f"{where} is not a valid regular expression: {exc}") from None
    except (RecursionError, OverflowError) as exc:
        raise PatternError(f"{where} is too complex: {exc}") from None
    if compiled.match(""):
        raise PatternError(f"{where} matches the empty string")
    _check_structure(parsed.data, where, bool(compiled.flags & re.IGNORECASE))
    guard = _leading_class(parsed)
    if guard:
        lead = _GLOBAL_FLAGS.match(src)
        body = src[lead.end():] if lead else src
        try:
            compiled = re.compile(guard + "(?:" + body + ")", compiled.flags)
        except re.error:  # pragma: no cover - the guard is built from the pattern's own class
            pass
    _probe(compiled, parsed, where)
    return compiled


def compile_patterns(patterns) -> list[re.Pattern]:
    patterns = list(patterns or ())
    if len(patterns) > MAX_PATTERNS:
        raise PatternError(f"at most {MAX_PATTERNS} custom patterns are allowed")
    return [compile_pattern(p, i) for i, p in enumerate(patterns)]
