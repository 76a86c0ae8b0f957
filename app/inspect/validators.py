"""Checksums and plausibility checks used by the detectors (pure functions, no regexes)."""
from __future__ import annotations

import base64
import math
import re
from collections import Counter

# --------------------------------------------------------------------------- payment cards


def luhn_ok(digits: str) -> bool:
    """Luhn (mod 10) check of a string of ASCII digits."""
    total = 0
    double = False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if double:
            d += d
            if d > 9:
                d -= 9
        total += d
        double = not double
    return total % 10 == 0


def card_iin_ok(digits: str) -> bool:
    """True when the number's issuer prefix and length belong to a known card scheme."""
    n = len(digits)
    d1 = digits[0]
    p2 = int(digits[:2])
    p3 = int(digits[:3])
    p4 = int(digits[:4])
    p6 = int(digits[:6])
    if d1 == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if 2200 <= p4 <= 2204:  # Mir
        return 16 <= n <= 19
    if p2 in (34, 37):  # American Express
        return n == 15
    if p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925:  # Discover
        return 16 <= n <= 19
    if 3528 <= p4 <= 3589:  # JCB
        return 16 <= n <= 19
    if 300 <= p3 <= 305 or p2 in (36, 38, 39) or p4 == 3095:  # Diners Club
        return 14 <= n <= 19
    if p2 == 62:  # UnionPay
        return 16 <= n <= 19
    if p2 == 50 or 56 <= p2 <= 69:  # Maestro and other 5x/6x debit schemes
        return 12 <= n <= 19
    return False


def card_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and card_iin_ok(digits) and luhn_ok(digits)


# --------------------------------------------------------------------------- IBAN

IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def iban_mod97(iban: str) -> int:
    """ISO 13616 remainder of a compact upper-case IBAN (1 means valid)."""
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97


def iban_ok(compact: str) -> bool:
    """Country known, length right for the country, check digits valid (mod 97 == 1)."""
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected:
        return False
    if not (compact[2:4].isdigit() and compact.isalnum() and compact.isascii()):
        return False
    return iban_mod97(compact) == 1


def iban_check_digits(country: str, bban: str) -> str:
    """The two check digits that make ``country + ?? + bban`` a valid IBAN (for test data)."""
    rem = iban_mod97(country + "00" + bban)
    return f"{98 - rem:02d}"


# --------------------------------------------------------------------------- national ids


def us_ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules: area 001-899 except 666, group 01-99, serial 0001-9999, minus voided numbers."""
    a = int(area)
    if a == 0 or a == 666 or a >= 900:
        return False
    if group == "00" or serial == "0000":
        return False
    if (area, group, serial) in (("078", "05", "1120"), ("219", "09", "9999")):
        return False  # publicly voided (the Woolworth wallet card and an SSA advertisement)
    return True


_NINO_BAD_FIRST = set("DFIQUV")
_NINO_BAD_SECOND = set("DFIOQUV")
_NINO_BAD_PREFIX = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def uk_nino_ok(prefix: str) -> bool:
    return (prefix[0] not in _NINO_BAD_FIRST and prefix[1] not in _NINO_BAD_SECOND
            and prefix not in _NINO_BAD_PREFIX)


def de_tax_id_check_digit(first10: str) -> int:
    """ISO/IEC 7064 MOD 11,10 check digit of the German Steuer-Identifikationsnummer."""
    product = 10
    for ch in first10:
        total = (ord(ch) - 48 + product) % 10
        if total == 0:
            total = 10
        product = (total * 2) % 11
    check = 11 - product
    return 0 if check == 10 else check


def de_tax_id_ok(digits: str) -> bool:
    """11 digits, no leading zero, the digit-frequency rule, MOD 11,10 check digit."""
    if len(digits) != 11 or digits[0] == "0":
        return False
    head = digits[:10]
    counts = Counter(head)
    multi = [d for d, c in counts.items() if c > 1]
    if len(multi) != 1 or counts[multi[0]] > 3:
        return False
    if counts[multi[0]] == 3 and multi[0] * 3 in head:
        return False  # a digit may appear three times, but not three times in a row
    return de_tax_id_check_digit(head) == ord(digits[10]) - 48


def fr_nir_key(first13: str) -> int:
    """Key of a French NIR ("numéro de sécurité sociale"); Corsica 2A/2B count as 19/18."""
    dept = first13[5:7].upper()
    if dept == "2A":
        first13 = first13[:5] + "19" + first13[7:]
    elif dept == "2B":
        first13 = first13[:5] + "18" + first13[7:]
    return 97 - int(first13) % 97


def fr_nir_ok(compact: str) -> bool:
    """15 characters: sex, year, month, department (2A/2B allowed), commune, order, key."""
    if len(compact) != 15 or compact[0] not in "12":
        return False
    month = int(compact[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    if not compact[13:].isdigit():
        return False
    try:
        return fr_nir_key(compact[:13]) == int(compact[13:])
    except ValueError:
        return False


# --------------------------------------------------------------------------- secrets


_CLOGC = [0.0] + [c * math.log2(c) for c in range(1, 1025)]


def shannon_entropy(s: str) -> float:
    """Shannon entropy in bits per character: log2(n) - sum(c*log2(c))/n over the counts c."""
    n = len(s)
    if not n:
        return 0.0
    if n > 1024:
        s = s[:1024]
        n = 1024
    return math.log2(n) - sum(map(_CLOGC.__getitem__, Counter(s).values())) / n


_LOWER = re.compile(r"[a-z]")
_UPPER = re.compile(r"[A-Z]")
_DIGIT = re.compile(r"[0-9]")


def char_classes(s: str) -> int:
    """How many of ASCII lower case, upper case and digits occur in ``s``."""
    return ((_LOWER.search(s) is not None) + (_UPPER.search(s) is not None)
            + (_DIGIT.search(s) is not None))


def jwt_header_ok(segment: str) -> bool:
    """True when a base64url segment decodes to a JSON object naming ``alg`` or ``typ``."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (ValueError, TypeError):
        return False
    return raw[:1] == b"{" and (b'"alg"' in raw or b'"typ"' in raw)
