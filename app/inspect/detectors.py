"""Built-in detectors: precompiled, linear-time scanners over one text.

Every scanner returns raw ``(detector, start, end, score)`` tuples; :mod:`.inspector` turns them
into :class:`~app.inspect.types.Finding` objects, resolves overlaps and scores the verdict.

Performance rules followed by every regex here (they are what keeps a 1 MB text well under
100 ms, see ``tests/inspect/test_inspect_performance.py``):

* a scanner only runs when a cheap substring test says it can match (``text.find("sk-")``...)
  and then starts at that first occurrence;
* a pattern starts with a literal where possible (the regex engine then skips ahead with a fast
  literal search) and never starts with an unbounded repeat of a class (that would re-scan the
  same run from every position: quadratic);
* token bodies use possessive quantifiers (``{20,}+``), so a failed match never backtracks into
  them, and every other repeat is bounded;
* anything hard to express safely as a regex (checksums, left context, placeholders) is checked
  in Python, only on the few candidates the regexes return.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass

from .validators import (
    card_ok, char_classes, de_tax_id_ok, fr_nir_ok, iban_ok, IBAN_LENGTHS, jwt_header_ok,
    shannon_entropy, uk_nino_ok, us_ssn_ok,
)

SECRET, PII, CUSTOM = "secret", "pii", "custom"


@dataclass(frozen=True)
class DetectorInfo:
    name: str
    category: str
    weight: float
    description: str


_INFO = [
    # --- secrets: vendor tokens with a recognisable prefix
    DetectorInfo("openai_api_key", SECRET, 0.95,
                 "OpenAI-style API key: sk-..., sk-proj-..., sk-svcacct-..., sk-admin-... "
                 "(random body of 20+ characters)"),
    DetectorInfo("anthropic_api_key", SECRET, 0.95,
                 "Anthropic API key: sk-ant-<kind><nn>-<32+ characters>"),
    DetectorInfo("xai_api_key", SECRET, 0.95, "xAI API key: xai-<32+ alphanumerics>"),
    DetectorInfo("groq_api_key", SECRET, 0.95, "Groq API key: gsk_<32+ alphanumerics>"),
    DetectorInfo("aws_access_key_id", SECRET, 0.9,
                 "AWS access key id: AKIA/ASIA/ABIA/ACCA + 16 upper-case alphanumerics"),
    DetectorInfo("aws_secret_key", SECRET, 0.95,
                 "AWS secret access key: 40 base64 characters assigned to an "
                 "aws_secret_access_key-like name, or following an access key id"),
    DetectorInfo("github_token", SECRET, 0.95,
                 "GitHub token: ghp_/gho_/ghu_/ghs_/ghr_ + 30+ alphanumerics, github_pat_..."),
    DetectorInfo("slack_token", SECRET, 0.95,
                 "Slack token (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxo-) or incoming-webhook URL"),
    DetectorInfo("google_api_key", SECRET, 0.9, "Google API key: AIza + 35 characters"),
    DetectorInfo("jwt", SECRET, 0.8,
                 "JSON Web Token: three base64url segments whose header decodes to JSON "
                 "with alg/typ"),
    DetectorInfo("private_key", SECRET, 1.0,
                 "PEM private key block (-----BEGIN ... PRIVATE KEY----- with a body), "
                 "the whole block up to its END line"),
    # --- secrets: context based
    DetectorInfo("credential_assignment", SECRET, 0.85,
                 "a value assigned to a password/secret/token/api-key-like name in code, "
                 "env, JSON, YAML, XML, URL query strings, CLI flags or an Authorization "
                 "header; placeholders, references and type annotations are ignored"),
    DetectorInfo("url_credentials", SECRET, 0.9,
                 "password in the user-info part of a URL: scheme://user:password@host"),
    DetectorInfo("high_entropy_secret", SECRET, 0.7,
                 "a high-entropy string (16+ chars, letters and digits, >= 3 bits/char) "
                 "assigned to a key/auth/signature/salt/session/cookie-like name"),
    # --- personal data
    DetectorInfo("email", PII, 0.5, "e-mail address"),
    DetectorInfo("phone", PII, 0.5,
                 "phone number: E.164 (+CC ...), North American (555) 123-4567 / "
                 "555-123-4567, European trunk-prefixed (020 7946 0958, 06 12 34 56 78, "
                 "030 12345678), or bare digits after a phone/tel/mobile label"),
    DetectorInfo("credit_card", PII, 0.9,
                 "payment card number: 13-19 digits (plain or grouped by spaces/hyphens), "
                 "known issuer prefix and length, Luhn-valid"),
    DetectorInfo("iban", PII, 0.85,
                 "IBAN: known country, the country's length, mod-97 check digits valid"),
    DetectorInfo("us_ssn", PII, 0.9,
                 "US social security number NNN-NN-NNNN (or bare 9 digits after an SSN "
                 "label), SSA-invalid ranges excluded"),
    DetectorInfo("uk_nino", PII, 0.85,
                 "UK National Insurance number: two allowed prefix letters, 6 digits, "
                 "suffix A-D"),
    DetectorInfo("de_tax_id", PII, 0.8,
                 "German tax identification number (Steuer-IdNr): 11 digits, digit-"
                 "frequency rule and ISO 7064 MOD 11,10 check digit"),
    DetectorInfo("fr_nir", PII, 0.85,
                 "French social security number (NIR/INSEE): 15 characters, structure and "
                 "mod-97 key valid"),
    # --- admin defined
    DetectorInfo("custom_keyword", CUSTOM, 1.0,
                 "an admin-defined keyword (case-insensitive, whole words)"),
    DetectorInfo("custom_pattern", CUSTOM, 1.0, "a match of an admin-defined regex"),
    # --- fail closed
    DetectorInfo("overflow", SECRET, 1.0,
                 "not a pattern: the text had more candidate matches than the inspection "
                 "budget (MAX_CANDIDATES; only degenerate or adversarial input does), so the "
                 "rest of it, from the first unexamined candidate, is treated as sensitive"),
]

INFO: dict[str, DetectorInfo] = {i.name: i for i in _INFO}
DETECTORS: dict[str, str] = {i.name: i.description for i in _INFO}
CATEGORY: dict[str, str] = {i.name: i.category for i in _INFO}
WEIGHT: dict[str, float] = {i.name: i.weight for i in _INFO}
BUILTIN = frozenset(n for n, c in CATEGORY.items() if c != CUSTOM and n != "overflow")

# A generic finding is dropped when it overlaps a finding of one of these detectors (the more
# specific one names the same span better; see docs/sensitivity.md, "Overlaps").
_TOKENS = frozenset({"openai_api_key", "anthropic_api_key", "xai_api_key", "groq_api_key",
                     "aws_access_key_id", "aws_secret_key", "github_token", "slack_token",
                     "google_api_key", "jwt", "private_key", "url_credentials"})
SUPPRESSED_BY: dict[str, frozenset] = {
    "credential_assignment": _TOKENS,
    "high_entropy_secret": _TOKENS | {"credential_assignment"},
    "email": frozenset({"url_credentials"}),
    "phone": frozenset({"credit_card", "iban", "us_ssn", "de_tax_id", "fr_nir", "uk_nino"}),
}

# Work budget: the regexes are linear, but each candidate they return is validated in Python
# (a few microseconds). Ordinary text has a handful of candidates per kilobyte; a degenerate or
# adversarial text can have one every few characters. Past this many candidates per text the
# inspector stops validating and fails closed: an "overflow" finding covers the text from the
# first unexamined candidate to the end (so the verdict is sensitive and redaction removes it).
MAX_CANDIDATES = 5000


class Budget:
    """Candidates left for one text, and where the first unexamined one was."""

    __slots__ = ("left", "overflow_at")

    def __init__(self, left: int = MAX_CANDIDATES):
        self.left = left
        self.overflow_at = -1

    def take(self, pos: int) -> bool:
        if self.left > 0:
            self.left -= 1
            return True
        if self.overflow_at < 0 or pos < self.overflow_at:
            self.overflow_at = pos
        return False

# --------------------------------------------------------------------------- helpers

_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_TOKEN_CHARS = _ALNUM | {"_", "-"}
_B64URL_CHARS = _TOKEN_CHARS | {"."}


_SEP_RUN = re.compile(r"[A-Za-z0-9]+")
_HAS_DIGIT_RE = re.compile(r"\d")
_HAS_ALPHA_RE = re.compile(r"[A-Za-z]")


def _longest_run(body: str) -> int:
    return max((len(r) for r in _SEP_RUN.findall(body)), default=0)


def _random_body(body: str, min_len: int = 20, min_run: int = 16, min_classes: int = 2,
                 min_entropy: float = 3.0) -> bool:
    """Shaped like a random token, not like ``your-api-key-here`` or ``xxxxxxxx``."""
    body = body[:512]  # real keys are shorter; bounds the work on a degenerate megabyte token
    return (len(body) >= min_len and _longest_run(body) >= min_run
            and char_classes(body) >= min_classes
            and _HAS_DIGIT_RE.search(body) is not None
            and shannon_entropy(body) >= min_entropy)


# --------------------------------------------------------------------------- prefixed tokens

def _openai(text, m):
    body = m.group(1)
    for p in ("proj-", "svcacct-", "admin-", "None-"):
        if body.startswith(p):
            body = body[len(p):]
            break
    return _random_body(body)


def _anthropic(text, m):
    return _random_body(m.group(1), min_len=32)


def _alnum_body(text, m):
    return _random_body(m.group(1), min_len=32)


def _github(text, m):
    return _random_body(m.group(1), min_len=30, min_run=20)


_DIGIT_RUN6 = re.compile(r"(?:\D*\d){6}")


def _slack(text, m):
    return _DIGIT_RUN6.match(m.group(1)[:256]) is not None  # a real token has numeric ids


def _google(text, m):
    return char_classes(m.group(1)) >= 2


def _aws_id(text, m):
    return True


def _jwt(text, m):
    return jwt_header_ok(m.group(1))


# (detector, regex, left-boundary chars, validator). Every regex starts with a literal, so a scan
# is a fast substring search (about as cheap as an ``in`` test) plus work at each occurrence.
_TOKEN_RULES = [
    ("anthropic_api_key", "sk-ant-",
     re.compile(r"sk-ant-[a-z]{2,10}\d{0,3}-([A-Za-z0-9_\-]{32,}+)"), _TOKEN_CHARS, _anthropic),
    ("openai_api_key", "sk-",
     re.compile(r"sk-(?!ant-)([A-Za-z0-9_\-]{20,}+)"), _TOKEN_CHARS, _openai),
    ("xai_api_key", "xai-", re.compile(r"xai-([A-Za-z0-9]{32,}+)"), _TOKEN_CHARS, _alnum_body),
    ("groq_api_key", "gsk_", re.compile(r"gsk_([A-Za-z0-9]{32,}+)"), _TOKEN_CHARS, _alnum_body),
    ("github_token", "gh", re.compile(r"gh[pousr]_([A-Za-z0-9]{30,}+)"), _TOKEN_CHARS, _github),
    ("github_token", "github_pat_", re.compile(r"github_pat_([A-Za-z0-9_]{40,}+)"), _TOKEN_CHARS,
     lambda t, m: _random_body(m.group(1), min_len=40, min_run=16)),
    ("slack_token", "xox", re.compile(r"xox[abposr]-([A-Za-z0-9\-]{10,}+)"), _TOKEN_CHARS,
     _slack),
    ("slack_token", "hooks.slack.com/",
     re.compile(r"hooks\.slack\.com/services/T[A-Z0-9]{6,}+/B[A-Z0-9]{6,}+/[A-Za-z0-9]{16,}+"),
     _TOKEN_CHARS, lambda t, m: True),
    ("google_api_key", "AIza",
     re.compile(r"AIza([0-9A-Za-z_\-]{35})(?![0-9A-Za-z_\-])"), _TOKEN_CHARS, _google),
] + [
    ("aws_access_key_id", prefix, re.compile(prefix + r"[A-Z0-9]{16}(?![A-Za-z0-9])"), _ALNUM,
     _aws_id) for prefix in ("AKIA", "ASIA", "ABIA", "ACCA")
] + [
    ("jwt", "eyJ",
     re.compile(r"(eyJ[A-Za-z0-9_\-]{4,}+)\.eyJ[A-Za-z0-9_\-]{4,}+\.[A-Za-z0-9_\-]*+"),
     _B64URL_CHARS, _jwt),
]

_AWS_SECRET_NEAR = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{39}[A-Za-z0-9/+=](?![A-Za-z0-9/+=])")


def _aws_secret_ok(value: str) -> bool:
    return (len(value) == 40 and char_classes(value) >= 2
            and _HAS_DIGIT_RE.search(value) is not None and shannon_entropy(value) >= 3.5)


def _scan_tokens(text: str, enabled, out: list, budget: Budget) -> None:
    for det, literal, rx, left_chars, check in _TOKEN_RULES:
        if det not in enabled:
            continue
        first = text.find(literal)  # a substring search is cheaper than the regex's own
        if first < 0:
            continue
        w = WEIGHT[det]
        for m in rx.finditer(text, first):
            s = m.start()
            if s and text[s - 1] in left_chars:
                continue
            if not budget.take(s):
                break
            if check(text, m):
                out.append((det, s, m.end(), w))
                if det == "aws_access_key_id" and "aws_secret_key" in enabled:
                    # credentials CSV / INI: the secret follows the key id closely
                    near = _AWS_SECRET_NEAR.search(text, m.end(), m.end() + 120)
                    if near and _aws_secret_ok(near.group()):
                        out.append(("aws_secret_key", near.start(), near.end(),
                                    WEIGHT["aws_secret_key"]))


# --------------------------------------------------------------------------- private keys

_PEM_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----")
# body of a block: base64, armor headers (Proc-Type: 4,ENCRYPTED), real or escaped newlines
_PEM_BODY = re.compile(r"(?:[A-Za-z0-9+/=:,. \t\r\n]++|-(?!----)|\\[rn])*+")
_B64_COUNT = re.compile(r"[A-Za-z0-9+/]{16}")


_PEM_LINE_SEP = re.compile(r"\r?\n|\\[rn]")
_B64_LINE = re.compile(r"[A-Za-z0-9+/=.]+")  # dots: an elided paste ("...") stays inside
_B64_HEAD = re.compile(r"[A-Za-z0-9+/=]+")


def _truncated_body_end(text: str, body_start: int, end: int) -> int:
    """Where a block without an END line stops: armor headers ("Proc-Type: 4,ENCRYPTED") only
    before the base64 lines, then base64 lines; the first other line ends it, keeping only a
    base64-looking head of it (a key pasted and followed by words on the same line)."""
    good, seen, i = body_start, False, body_start
    horizon = min(len(text), end + 256)  # bounded look past the body: linear on long lines
    while i < end:
        # judge whole lines: the body regex may have stopped inside one ("idempotency|_key: ...")
        sep = _PEM_LINE_SEP.search(text, i, horizon)
        line_end = sep.start() if sep else horizon
        raw = text[i:line_end]
        line = raw.strip(" \t")
        if line and _B64_LINE.fullmatch(line):
            seen, good = True, min(line_end, end)
        elif line and not seen and ":" in line:
            good = min(line_end, end)
        elif line:
            lead = len(raw) - len(raw.lstrip(" \t"))
            head = _B64_HEAD.match(line)
            # only a whole word: "MYRg idempotency_key" keeps "MYRg", "idempotency_key" nothing
            if (head and head.end() < len(line) and line[head.end()] in " \t"
                    and any(c.isdigit() or c in "+/" for c in head.group())):
                good = min(i + lead + head.end(), end)
            break
        if sep is None or sep.start() >= end:
            break
        i = sep.end()
    return good


def _scan_private_keys(text: str, out: list, budget: Budget) -> None:
    """Each BEGIN line up to its END line; a block without one (a truncated paste) runs as far
    as its base64 body. Linear: the END line found is reused by later BEGINs before it, and a
    truncated body stops at the next "-----"."""
    pos = 0
    w = WEIGHT["private_key"]
    end_match = None  # first END line at or after the last search position
    searched_to = -1
    no_more_end = False
    while True:
        m = _PEM_BEGIN.search(text, pos)
        if not m:
            return
        start, body_start = m.start(), m.end()
        if not budget.take(start):
            return
        if not no_more_end and (end_match is None or end_match.start() < body_start):
            end_match = None
            idx = text.find("-----END ", max(body_start, searched_to))
            while idx != -1:
                end_match = _PEM_END.match(text, idx)
                if end_match:
                    break
                idx = text.find("-----END ", idx + 9)
            searched_to = idx if idx != -1 else len(text)
            no_more_end = end_match is None
        nxt = _PEM_BEGIN.search(text, body_start, end_match.start()) if end_match else None
        if end_match is not None and nxt is None:
            body_end, end = end_match.start(), end_match.end()
        else:  # truncated block: the key runs as far as its base64 body does
            end = _PEM_BODY.match(text, body_start).end()
            end = _truncated_body_end(text, body_start, end)
            while end > body_start and text[end - 1] in " \t\r\n\\":
                end -= 1
            body_end = end
        if len(_B64_COUNT.findall(text, body_start, body_end)) >= 2:
            out.append(("private_key", start, end, w))
            pos = max(end, body_start)
        else:
            pos = body_start


# --------------------------------------------------------------------------- assignments

# Matched on the lower-cased text, one regex per keyword root: each starts with its literal, so
# the engine jumps from occurrence to occurrence with a fast substring search, and only runs
# where such a root occurs (api_key, secret_key... are found through "key", and the whole name
# is recovered by walking left). The rest of the name, the operator and the value are bounded,
# and the value sits in a lookahead so that a rejected candidate never swallows the next one.
_ROOTS = ("pass", "pwd", "secret", "token", "key", "auth", "cred", "salt", "sig", "session",
          "cookie")
_QUOTED = r"\\?(?P<q{n}>[\"'`])(?P<v{n}>[^\"'`\\\n]{{4,256}}+)\\?(?P=q{n})"
# a bare value stops at "=" and ":" (bar base64 padding): a chain like key=key=key= then costs
# the engine one short look per candidate instead of 256 characters each
_BARE = r"(?P<b{n}>[^\s\"'`,;&<>(){{}}\[\]\\|=:]{{4,256}}+={{0,2}})"
_ASSIGN_TAIL = (
    r"(?P<rest>[a-z0-9_.\-]{0,40}+)(?:\\?[\"'])?"
    r"(?:"
    r"[ \t]{0,4}+(?P<op>:=|=>|==|=|:|>)[ \t]{0,6}+(?:(?:bearer|basic|token)[ \t]+)?"
    r"(?=" + _QUOTED.format(n=1) + "|" + _BARE.format(n=1) + r")"
    r"|[ \t]+is[ \t]+(?=" + _QUOTED.format(n=2) + "|" + _BARE.format(n=2) + r")"
    r")")
_ASSIGN_RES = tuple((root, re.compile(root + _ASSIGN_TAIL, re.ASCII)) for root in _ROOTS)
# CLI flags: --password hunter2, --db-password=..., --api-key sk-...
_CLI_RE = re.compile(
    r"--(?=[a-z0-9])(?=[a-z0-9\-]{0,40}?(?:pass|pwd|secret|token|key))"
    r"(?P<flag>[a-z0-9][a-z0-9\-]{0,40}+)(?:[ \t]+|=)"
    r"(?=" + _QUOTED.format(n=3) + "|" + _BARE.format(n=3) + ")")

_IDENT_REV = re.compile(r"[A-Za-z0-9_.\-]{0,40}+")
_SEGMENTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

_STRONG = {"password", "passwd", "passphrase", "passcode", "pwd", "pass", "pw", "secret",
           "secrets", "token", "apikey", "credential", "credentials", "creds", "authorization",
           "privatekey", "secretkey", "accesskey"}
_STRONG_SUFFIX = ("password", "passwd", "passphrase", "secret", "token", "apikey")
_STRONG_PAIRS = {("api", "key"), ("access", "key"), ("secret", "key"), ("private", "key"),
                 ("auth", "key"), ("master", "key"), ("encryption", "key"), ("signing", "key"),
                 ("account", "key"), ("client", "secret"), ("app", "secret"), ("auth", "token"),
                 ("access", "token"), ("refresh", "token"), ("api", "token")}
_WEAK = {"key", "auth", "salt", "signature", "sig", "session", "sessionid", "cookie", "hmac",
         "private", "bearer", "license", "dsn"}
_VETO = {"max", "min", "num", "count", "counts", "length", "len", "size", "limit", "limits",
         "type", "types", "usage", "used", "url", "uri", "endpoint", "path", "file", "filename",
         "dir", "name", "names", "field", "label", "hint", "prompt", "placeholder", "policy",
         "reset", "forgot", "strength", "regex", "pattern", "validator", "validation", "expiry",
         "expires", "expiration", "ttl", "timeout", "format", "mode", "public", "pub", "cache",
         "idempotency", "primary", "foreign", "sort", "partition", "hotkey", "keyboard",
         "keyword", "keywords", "keys", "tokens", "tokenizer", "tokenize", "tokenized", "header",
         "param", "query", "env", "var", "column", "col", "input", "widget", "form", "button",
         "enabled", "required", "rotation", "id", "ids", "index", "ref", "prefix", "suffix",
         "storage", "store", "manager", "provider", "service", "class", "handler", "request",
         "response", "callback", "field", "bypass", "compass", "passenger", "passport", "pos",
         "position", "events", "event", "budget", "window", "rate", "price", "cost", "lifetime"}
_NON_VALUES = {"none", "null", "nil", "true", "false", "undefined", "str", "string", "int",
               "bool", "boolean", "bytes", "text", "any", "optional", "required", "varchar",
               "char", "secretstr", "object", "number", "self", "this", "password", "secret",
               "token", "empty", "n/a", "na", "tbd", "todo", "unset", "hidden", "masked",
               "redacted", "omitted", "removed", "changeit_later", "default", "input", "prompt",
               "pass", "fail", "ok", "yes", "no", "on", "off", "env", "environment", "vault",
               "keychain", "base64", "hex", "sha256", "md5", "bcrypt", "argon2", "hash"}
_PLACEHOLDER_WORDS = ("your", "placeholder", "redacted", "example", "xxxx", "****", "...",
                      "<", "${", "{{", "}}", "%(", "os.environ", "process.env", "getenv",
                      "replace_me", "replace-me", "replaceme", "insert", "dummy")
_MASK_CHARS = set("*xX.-_#•·?0 ")
_MASK_RE = re.compile(r"[*xX.\-_#•·?0 ]+")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
_CODE_IDENT = re.compile(r"[A-Za-z_][A-Za-z_]*")
_ATTR_REF = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_EOL = re.compile(r"[\r\n]| #")
_ANNOT_TAIL = re.compile(r"[A-Za-z_][\w\[\], .|]{0,60}+=[ \t]*([\"'])([^\"'\\\n]{1,256}+)\1")
_PATH = re.compile(r"(?:/[a-z0-9_.\-]+)+/?")
_HE_CHARS = re.compile(r"[A-Za-z0-9+/=_\-.~:]+")
_AWS_SECRET_VALUE = re.compile(r"[A-Za-z0-9/+]{39}[A-Za-z0-9/+=]")


def _segments(key: str) -> list[str]:
    return [s.lower() for s in _SEGMENTS.findall(key)]


def _key_kind(segs: list[str]) -> str | None:
    """'aws' / 'strong' / 'weak' / None for the segments of an assigned name."""
    if not segs:
        return None
    for s in segs:
        if s in _VETO and not (s == "id" and "session" in segs):
            return None
    sset = set(segs)
    if "secret" in sset and ("aws" in sset or ("access" in sset and "key" in sset)):
        return "aws"
    if "secretaccesskey" in sset or "awssecretaccesskey" in sset:
        return "aws"
    if sset & _STRONG:
        return "strong"
    for s in segs:
        if s.endswith(_STRONG_SUFFIX):
            return "strong"
    for a, b in zip(segs, segs[1:]):
        if (a, b) in _STRONG_PAIRS:
            return "strong"
    if sset & _WEAK or any(s.endswith("key") for s in segs):
        return "weak"
    return None


_PLACEHOLDER_RE = re.compile("|".join(re.escape(w) for w in _PLACEHOLDER_WORDS))


def _placeholder(v: str) -> bool:
    vl = v.lower()
    if v[0] in "$%{<@!&*" or vl in _NON_VALUES:
        return True
    if _PLACEHOLDER_RE.search(vl) or _MASK_RE.fullmatch(v):
        return True
    return v.count(v[0]) == len(v)


def _strong_value_ok(text: str, v: str, vs: int, ve: int, bare: bool, op: str | None,
                     key: str, spaced: bool) -> bool:
    if len(v) < 4 or _placeholder(v):
        return False
    if v.rstrip("=").lower() in (key.lower(), "password", "secret", "token", "passwd", "pwd"):
        return False
    if not bare:
        return True
    nxt = text[ve] if ve < len(text) else ""
    if nxt and nxt in "([{":
        return False  # a call or subscript: password = getpass(...), os.environ[...]
    if _ATTR_REF.fullmatch(v) or _ENV_NAME.fullmatch(v):
        return False  # self.password, settings.DB_PASSWORD, DB_PASSWORD
    if op == ":":
        # YAML / header style: the value must end its line (prose "Password: must be 8 chars"
        # continues with more words)
        i = ve
        n = len(text)
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] not in "\r\n,}]#":
            return False
    elif spaced and op in ("=", ":=", "=>", "==") and _CODE_IDENT.fullmatch(v):
        return False  # code: password = user_input
    return True


def _prose_value_ok(text: str, v: str, ve: int) -> bool:
    """An unquoted value in prose must end the clause and not look like a word."""
    if len(v) < 6 or _placeholder(v):
        return False
    rest = text[ve:ve + 2]
    if rest and not (rest[0] in "\r\n" or rest[0] in ".,;!?" and rest[1:2] in ("", " ", "\n")):
        return False
    return any(c.isdigit() for c in v) or not v.isalpha()


def _high_entropy_ok(v: str) -> bool:
    if len(v) < 16 or not _HE_CHARS.fullmatch(v):
        return False
    if not _HAS_DIGIT_RE.search(v) or not _HAS_ALPHA_RE.search(v):
        return False
    if v.startswith(("http", "./", "~/")) or "://" in v or _PATH.fullmatch(v) or _placeholder(v):
        return False
    return shannon_entropy(v) >= 3.0


def _value_groups(m, ns):
    for n in ns:
        v = m.group("v%d" % n)
        if v is not None:
            return m.start("v%d" % n), m.end("v%d" % n), False
        b = m.group("b%d" % n) if ("b%d" % n) in m.re.groupindex else None
        if b is not None:
            return m.start("b%d" % n), m.end("b%d" % n), True
    return None


_IDENT_CHARS = _ALNUM | {"_", ".", "-"}
_KIND_CACHE: dict[str, str | None] = {}


def _kind_of(key: str) -> str | None:
    kind = _KIND_CACHE.get(key, "?")
    if kind == "?":
        if len(_KIND_CACHE) > 4096:
            _KIND_CACHE.clear()
        kind = _KIND_CACHE[key] = _key_kind(_segments(key))
    return kind


def _assignment(text, m, want_cred, want_he, want_aws, out) -> int:
    """One candidate of an assignment regex: classify the name, validate the value. Returns the
    end of the candidate's value (later candidates of the same root inside it are skipped)."""
    end = _value_end(m)
    ks = m.start()
    # the whole name: walk left over identifier characters (at most 40)
    if ks and text[ks - 1] in _IDENT_CHARS:
        key_start = ks - _IDENT_REV.match(text[max(0, ks - 40):ks][::-1]).end()
    else:
        key_start = ks
    key = text[key_start:m.end("rest")]
    kind = _kind_of(key)
    if kind is None:
        return end
    op = m.group("op")
    if op == ">" and not (key_start and text[key_start - 1] == "<"):
        return end  # only <password>value</password>
    if op == "==" and m.group("b1") is not None:
        return end  # comparison with a variable
    got = _value_groups(m, (1, 2))
    if got is None:
        return end
    vs, ve, bare = got
    if kind == "weak" and ve - vs < 16 and op != ":":
        return end  # a high-entropy value has 16+ characters
    if bare and op is None:  # prose: "my password is hunter2"
        v = text[vs:ve].rstrip(".,;:!?")
        ve = vs + len(v)
        if kind == "weak" or not _prose_value_ok(text, v, ve):
            return end
    if op == ">":  # <password>value</password>
        ve = text.find("</", vs, vs + 257)
        if ve <= vs or "\n" in text[vs:ve]:
            return end
    v = text[vs:ve]
    if bare and op == ":" and kind != "aws":
        if text[ve:ve + 1] in ("(", "[", "{") and ve < len(text):
            return end  # privateKey: fs.readFileSync(...)
        tail = _ANNOT_TAIL.match(text, vs)
        if tail:  # password: str = "hunter2"
            vs, ve, bare = tail.start(2), tail.end(2), False
            v = tail.group(2)
        else:  # YAML / header: the value runs to the end of the line (or a " #" comment)
            eol = _EOL.search(text, vs, vs + 257)
            line_end = eol.start() if eol else min(len(text), vs + 256)
            line = text[vs:line_end].rstrip(" \t,")
            if line and " " not in line and "\t" not in line:
                ve = vs + len(line)
                v = line
    spaced = text[m.start("op") - 1] in " \t" if op else True
    if kind == "aws":
        if want_aws and _AWS_SECRET_VALUE.fullmatch(v) and _aws_secret_ok(v):
            out.append(("aws_secret_key", vs, ve, WEIGHT["aws_secret_key"]))
            return end
        kind = "strong"
    if kind == "strong":
        if want_cred and _strong_value_ok(text, v, vs, ve, bare, op, key, spaced):
            out.append(("credential_assignment", vs, ve, WEIGHT["credential_assignment"]))
    elif want_he and _high_entropy_ok(v):
        if bare and op == ":" and not _strong_value_ok(text, v, vs, ve, bare, op, key, spaced):
            return end
        out.append(("high_entropy_secret", vs, ve, WEIGHT["high_entropy_secret"]))
    return end


def _value_end(m) -> int:
    for g in ("v1", "b1", "v2", "b2"):
        e = m.end(g)
        if e >= 0:
            return e
    return m.end()


def _scan_assignments(text: str, low: str, enabled, out: list, budget: Budget) -> None:
    want_cred = "credential_assignment" in enabled
    want_he = "high_entropy_secret" in enabled
    want_aws = "aws_secret_key" in enabled
    for root, rx in _ASSIGN_RES:
        first = low.find(root)
        if first >= 0:
            skip_to = -1
            for m in rx.finditer(low, first):
                s = m.start()
                if s < skip_to:
                    continue  # inside the value of the previous candidate: judged with it
                if not budget.take(max(0, s - 40)):
                    break
                skip_to = _assignment(text, m, want_cred, want_he, want_aws, out)
    if want_cred and "--" in low:
        for m in _CLI_RE.finditer(low):
            if m.start() and low[m.start() - 1] in _ALNUM:
                continue
            if not budget.take(m.start()):
                break
            if _key_kind(_segments(m.group("flag"))) != "strong":
                continue
            vs, ve, bare = _value_groups(m, (3,))
            v = text[vs:ve]
            if v.startswith("-") or not _strong_value_ok(text, v, vs, ve, bare, "=", "", False):
                continue
            out.append(("credential_assignment", vs, ve, WEIGHT["credential_assignment"]))


# --------------------------------------------------------------------------- URL credentials

# the password may contain "#" (people rarely percent-encode it); "@" ends it
_URL_CRED = re.compile(
    r"://(?P<user>[^\s:/@?#\[\]\"'<>]{0,128}+):(?P<pw>[^\s/@?\"'<>]{1,256}+)@(?=[A-Za-z0-9\[])")
_SCHEME_CHARS = _ALNUM | {"+", ".", "-"}


def _scan_url_credentials(text: str, out: list, budget: Budget) -> None:
    w = WEIGHT["url_credentials"]
    for m in _URL_CRED.finditer(text):
        s = m.start()
        if not budget.take(s):
            return
        if not s or text[s - 1] not in _SCHEME_CHARS:
            continue
        pw = m.group("pw")
        if pw[0] in "$%{<" or "{{" in pw or set(pw) <= _MASK_CHARS or pw.startswith("[REDACTED"):
            continue
        out.append(("url_credentials", m.start("pw"), m.end("pw"), w))


# --------------------------------------------------------------------------- e-mail

# "@" first (a literal: the engine jumps between "@"s), a local-part character before it, then
# dot-separated labels ending in an alphabetic TLD; everything else is checked in Python
_EMAIL_DOMAIN = re.compile(r"@(?<=[A-Za-z0-9._%+\-']@)"
                           r"((?:[A-Za-z0-9\-]{1,63}+\.(?=[A-Za-z0-9]))++[A-Za-z]{2,24}+)"
                           r"(?![A-Za-z0-9\-])")
_LOCAL_CHARS = frozenset(string.ascii_letters + string.digits + "._%+-'")
_EMAIL_LOCAL_REV = re.compile(r"[A-Za-z0-9._%+\-']{1,64}+")
_FILE_TLDS = {"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "pdf"}


def _scan_emails(text: str, out: list, budget: Budget) -> None:
    w = WEIGHT["email"]
    for m in _EMAIL_DOMAIN.finditer(text):
        at = m.start()
        if not budget.take(max(0, at - 64)):
            return
        lm = _EMAIL_LOCAL_REV.match(text[max(0, at - 65):at][::-1])
        if not lm:
            continue
        ln = lm.end()
        local = text[at - ln:at].lstrip("'")
        ln = len(local)
        if ln == 0 or ln > 64 or local[0] == "." or local[-1] == "." or ".." in local:
            continue
        ls = at - ln
        if ls and text[ls - 1] in _LOCAL_CHARS and text[ls - 1] != "'":
            continue  # local part longer than 64 characters
        if ls >= 3 and text.startswith("://", ls - 3):
            continue  # scheme://user@host is not an address
        if ls and text[ls - 1] in "/@":
            continue
        domain = m.group(1)
        labels = domain.split(".")
        tld = labels[-1]
        if len(labels) < 2 or not (2 <= len(tld) <= 24 and tld.isalpha() and tld.isascii()):
            continue
        if any(len(lb) > 63 or lb[0] == "-" or lb[-1] == "-" for lb in labels):
            continue
        if tld.lower() in _FILE_TLDS and (labels[0][:1].isdigit() or len(labels) == 2):
            continue  # icon@2x.png
        end = m.end()
        if end < len(text) and text[end] == ":" and text[end + 1:end + 2] not in ("", " ", "\n"):
            continue  # git@github.com:org/repo.git
        out.append(("email", ls, end, w))


# --------------------------------------------------------------------------- numbers

_RB = r"(?![\w]|[.,/\-]\d)"
_RBA = r"(?![A-Za-z0-9])"

# Four scanners, each starting with the character(s) it needs (two digits, a 1 or 2 followed by a
# separator, "+" or "("), so the engine's first-character filter skips everything else; the
# left boundary is a lookbehind placed after those characters. A number needs 9+ digits, so
# the single-digit chatter of ordinary text costs a failed two-character test at most.
# _RB: a number must not continue into letters/digits or into ".5" / "-7" / "/2" (decimals,
# ranges, dates).
#
# Numbers starting with two digits (d1 d2; d1 not inside a longer digit run). On a run of
# digits or on "0 0 0 ..." the engine gives up after the first two characters.
_DD_RE = re.compile(r"[0-9][0-9](?<![0-9][0-9][0-9])(?:(?<![\w.,+/\-][0-9][0-9])(?=[\d .\-/]{3})(?:"
                    + "|".join([
    r"(?P<bare>\d{9,17})" + _RB,  # 11-19 digits: card, tax id, NIR
    r"(?P<short>\d{7,8})" + _RB,  # 9-10 digits: a phone number or SSN only after a label
    r"(?P<cardg>\d\d(?P<cs>[ \-])(?:\d{6}(?P=cs)\d{4,5}|\d{4}(?P=cs)\d{4}(?P=cs)\d{1,4}"
    r"(?:(?P=cs)\d{3})?))" + _RB,
    r"(?<=[12][0-9])(?P<nir>\d ?\d\d ?(?:\d\d|2[AaBb]) ?\d{3} ?\d{3} ?\d\d)" + _RB,
    r"(?P<ssn>\d(?P<ss>[\- ])\d\d(?P=ss)\d{4})" + _RB,
    r"(?<=[1-9][0-9])(?P<detax> \d{3} \d{3} \d{3})" + _RB,
    r"(?<=[2-9][0-9])(?P<nanp>\d(?P<n2>[.\-])\d{3}(?P=n2)\d{4}|\d [2-9]\d\d \d{4})" + _RB,
    r"(?<=0[0-9])(?P<trunk>\d{0,3}(?P<ts>[ /\-])\d{2,8}(?:(?P=ts)\d{2,8}){0,4}"
    r"|(?<=0[1-9])(?:\.\d\d){4})" + _RB,
]) + r")"
    # after two upper-case letters (the letters are added back to the span in Python):
    # IBAN "DE89 3704 ...", NINO "AB123456C" / "AB 12 34 56 C"
    r"|(?<=(?<![\w.,+/\-])[A-Z][A-Z][0-9][0-9])(?:"
    r"(?P<iban>(?: ?[A-Z0-9]{4}){2,7}+(?: ?[A-Z0-9]{1,3})?)" + _RBA +
    r"|(?P<nino> ?\d\d ?\d\d ?[A-D])" + _RBA + ")"
    r"|(?<=(?<![\w.,+/\-])[A-Z][A-Z] [0-9][0-9])(?P<nino_sp> \d\d \d\d [A-D])" + _RBA +
    ")", re.ASCII)  # ASCII: \d is [0-9], a cheaper test
# Numbers whose second character is a separator: "1 84 12 ..." (NIR), "1-800-...",
# "1 (212) ...", "1 212 555 0143" (NANP with a country code)
_D1_RE = re.compile(r"[12](?<![\w.,+/\-][12])(?=[ .\-]?\(|[ .\-][0-9][0-9])(?:"
                    r"(?P<nir2> \d\d ?\d\d ?(?:\d\d|2[AaBb]) ?\d{3} ?\d{3} ?\d\d)" + _RB +
                    r"|(?<=1)(?P<nanp1>[ .\-]?\([2-9]\d\d\)[ .\-]?\d{3}[ .\-]\d{4}"
                    r"|(?P<n1>[.\-])[2-9]\d\d(?P=n1)\d{3}(?P=n1)\d{4}| [2-9]\d\d [2-9]\d\d \d{4})"
                    + _RB + ")", re.ASCII)
_PLUS_RE = re.compile(r"\+(?<![\w.,+/\-]\+)(?P<e164>\(?\d(?:[ .()\-]{0,2}+\d){6,14}+)(?!\w)",
                      re.ASCII)
_PAREN_RE = re.compile(r"\((?<![\w.,+/\-]\()(?P<nanp>[2-9]\d\d\)[ .\-]?\d{3}[ .\-]\d{4})" + _RB,
                       re.ASCII)
_DIGITS_ONLY = re.compile(r"\D")

# bare digit runs count as phone numbers / SSNs only right after a label (checked to start a
# word in Python); one literal-first regex per label
_CTX_TAIL = r"[\s:#=.\-]{0,5}+(?:is[ \t]+)?(?P<num>\+?\d{9,12})(?![\d\w])"
_CTX_LABELS = (("ssn", r"ssn"), ("social", r"social security(?: number| no\.?| #)?"),
               ("phone", r"phone(?: number| no\.?| #)?"), ("tel", r"tel(?:ephone)?"),
               ("mobile", r"mobile(?: number| phone)?"), ("cell", r"cell(?: phone)?"),
               ("fax", r"fax"), ("whatsapp", r"whatsapp"), ("sms", r"sms"),
               ("call", r"call(?: me)?(?: at| on)?"))
_CTX_RES = tuple((gate, re.compile(label + _CTX_TAIL, re.ASCII)) for gate, label in _CTX_LABELS)


def _digits(s: str) -> str:
    return _DIGITS_ONLY.sub("", s)


def _phone_ok_e164(d: str, raw: str) -> bool:
    if not 8 <= len(d) <= 15 or d[0] == "0":
        return False
    if d[0] == "1" and (len(d) != 11 or d[1] in "01"):
        return False
    national = d[1:]
    if len(set(national)) <= 2:
        return False
    return raw.count("(") == raw.count(")")


def _scan_numbers(text: str, enabled, out: list, budget: Budget) -> bool:
    """Numbers; returns whether a bare 9-12 digit run was seen (worth a look for labels)."""
    short = False
    for rx, gate in ((_DD_RE, None), (_D1_RE, None), (_PLUS_RE, "+"), (_PAREN_RE, "(")):
        if gate is None or gate in text:  # "+" and "(" scans are literal-first and cheap
            short = _number_matches(rx, text, enabled, out, budget) or short
    return short


def _number_matches(rx, text: str, enabled, out: list, budget: Budget) -> bool:
    W = WEIGHT
    short = False
    pos, n_text = 0, len(text)
    while pos < n_text:
        m = rx.search(text, pos)
        if m is None:
            break
        kind = m.lastgroup
        s, e = m.start(), m.end()
        pos = e if e > s else s + 1
        if kind == "short":
            short = True
            continue
        if kind in ("iban", "nino", "nino_sp"):
            s -= 3 if text[s - 1] == " " else 2  # add the country / prefix letters back
            kind = "nino" if kind == "nino_sp" else kind
        if not budget.take(s):
            return short
        raw = text[s:e]
        if kind == "bare":
            short = short or len(raw) <= 12
            n = len(raw)
            if n == 11:
                if "de_tax_id" in enabled and de_tax_id_ok(raw):
                    out.append(("de_tax_id", s, e, W["de_tax_id"]))
            elif n == 15 and raw[0] in "12" and fr_nir_ok(raw):
                if "fr_nir" in enabled:
                    out.append(("fr_nir", s, e, W["fr_nir"]))
            elif n >= 13 and "credit_card" in enabled and card_ok(raw):
                out.append(("credit_card", s, e, W["credit_card"]))
        elif kind in ("cardg", "cs"):
            if "credit_card" in enabled and card_ok(_digits(raw)):
                out.append(("credit_card", s, e, W["credit_card"]))
        elif kind in ("nir", "nir2"):
            if "fr_nir" in enabled and " " in raw and fr_nir_ok(raw.replace(" ", "")):
                out.append(("fr_nir", s, e, W["fr_nir"]))
            elif "fr_nir" in enabled and raw[5:7].upper() in ("2A", "2B") and fr_nir_ok(raw):
                out.append(("fr_nir", s, e, W["fr_nir"]))
        elif kind in ("ssn", "ss"):
            if "us_ssn" in enabled and us_ssn_ok(raw[:3], raw[4:6], raw[7:]):
                out.append(("us_ssn", s, e, W["us_ssn"]))
        elif kind == "detax":
            if "de_tax_id" in enabled and de_tax_id_ok(raw.replace(" ", "")):
                out.append(("de_tax_id", s, e, W["de_tax_id"]))
        elif kind == "iban":
            if "iban" in enabled:
                # the possessive groups may have run into the next IBAN ("... 9114 ES91 2100"):
                # scan again from where this one was cut
                pos = _iban(text, raw, s, out) or pos
        elif kind == "nino":
            if "uk_nino" in enabled and uk_nino_ok(raw[:2]):
                out.append(("uk_nino", s, e, W["uk_nino"]))
        elif "phone" in enabled:
            d = _digits(raw)
            if kind == "e164":
                if _phone_ok_e164(d, raw):
                    out.append(("phone", s, e, W["phone"]))
            elif kind in ("nanp", "nanp1"):
                out.append(("phone", s, e, W["phone"]))
            elif kind in ("trunk", "ts"):
                n = len(d)
                groups = raw.replace("/", " ").replace("-", " ").replace(".", " ").split()
                if all(len(g) == 2 for g in groups) and len(groups) != 5:
                    continue  # pairs: only the French 0X XX XX XX XX (lottery draws, times)
                if 10 <= n <= 12 or (d.startswith("00") and n <= 15 and n >= 11):
                    out.append(("phone", s, e, W["phone"]))
    return short


def _iban(text: str, raw: str, s: int, out: list) -> int | None:
    """Add the IBAN at ``s`` if valid; return where scanning goes on when the match was cut at
    the country's length (None: after the whole match)."""
    compact = raw.replace(" ", "")
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) < expected:
        return None
    resume = None
    if len(compact) > expected:
        # a spaced IBAN followed by another upper-case word: cut at the country's length
        count = 0
        cut = len(raw)
        for i, ch in enumerate(raw):
            if ch != " ":
                count += 1
                if count == expected:
                    cut = i + 1
                    break
        if cut >= len(raw) or raw[cut] != " ":
            return None
        raw, compact = raw[:cut], compact[:expected]
        resume = s + cut
    if iban_ok(compact):
        out.append(("iban", s, s + len(raw), WEIGHT["iban"]))
    return resume


def _scan_context_numbers(text: str, low: str, enabled, out: list, budget: Budget) -> None:
    for gate, rx in _CTX_RES:
        first = low.find(gate)
        if first >= 0:
            for m in rx.finditer(low, first):
                if m.start() and low[m.start() - 1].isalpha():
                    continue  # "hotel 123456789"
                if not budget.take(m.start()):
                    break
                _context_number(m, gate, enabled, out)


def _context_number(m, gate: str, enabled, out: list) -> None:
    ctx = gate
    num = m.group("num")
    s, e = m.start("num"), m.end("num")
    if ctx.startswith(("ssn", "social")):
        if "us_ssn" in enabled and len(num) == 9 and us_ssn_ok(num[:3], num[3:5], num[5:]):
            out.append(("us_ssn", s, e, WEIGHT["us_ssn"]))
    elif "phone" in enabled:
        d = num.lstrip("+")
        ok = False
        if num.startswith("+"):
            ok = _phone_ok_e164(d, num)
        elif len(d) == 10 and d[0] in "23456789":
            ok = True  # NANP
        elif len(d) in (10, 11, 12) and d[0] == "0" and d[1] != "0":
            ok = True  # trunk-prefixed national number
        elif len(d) == 11 and d[0] == "1" and d[1] in "23456789":
            ok = True
        if ok:
            out.append(("phone", s, e, WEIGHT["phone"]))


# --------------------------------------------------------------------------- entry point

_NUMBER_DETECTORS = frozenset({"phone", "credit_card", "iban", "us_ssn", "uk_nino", "de_tax_id",
                               "fr_nir"})
_ASSIGN_DETECTORS = frozenset({"credential_assignment", "high_entropy_secret", "aws_secret_key"})


def lower_aligned(text: str) -> str:
    """``text.lower()`` with every index kept: U+0130 (dotted capital I) is the only character
    whose lower case is two characters long; it becomes a plain "i"."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return text.replace("\u0130", "i").lower()


def _has_digit(text: str) -> bool:
    for d in "0123456789":
        if d in text:
            return True
    return False


def scan_builtin(text: str, enabled: frozenset, budget: Budget | None = None,
                 low: str | None = None) -> list:
    """All raw built-in findings in ``text`` (before overlap resolution). ``low`` is
    ``lower_aligned(text)`` if the caller has it."""
    out: list = []
    if not text:
        return out
    if budget is None:
        budget = Budget()
    _scan_tokens(text, enabled, out, budget)
    if "private_key" in enabled and "PRIVATE KEY" in text:
        _scan_private_keys(text, out, budget)
    if "url_credentials" in enabled and "://" in text:
        _scan_url_credentials(text, out, budget)
    if "email" in enabled and "@" in text:
        _scan_emails(text, out, budget)
    if enabled & _ASSIGN_DETECTORS:
        if low is None:
            low = lower_aligned(text)
        _scan_assignments(text, low, enabled, out, budget)
    if enabled & _NUMBER_DETECTORS and _has_digit(text):
        short = _scan_numbers(text, enabled, out, budget)
        if short and ("phone" in enabled or "us_ssn" in enabled):
            if low is None:
                low = lower_aligned(text)
            _scan_context_numbers(text, low, enabled, out, budget)
    return out
