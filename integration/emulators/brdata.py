"""brdata.py - Brazilian record data the ERP emulators generate alike.

Seeded values only (every function takes the emulator's random.Random), so
an emulator's data stays a function of its seed. Standard library only.
"""

import unicodedata

CNPJ_WEIGHTS = ((5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2), (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2))


def ascii_fold(text):
    """Accents dropped (e-mail local parts are ASCII here)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def doc_digits(rng, n):
    """A CPF (n=9: 11 digits) or a CNPJ (n=12: 14 digits) with valid check
    digits, as a string."""
    d = [rng.randrange(10) for _ in range(n)]
    if n == 12:
        for w in CNPJ_WEIGHTS:
            r = sum(x * y for x, y in zip(d, w)) % 11
            d.append(0 if r < 2 else 11 - r)
    else:
        for k in (10, 11):
            r = sum(x * w for x, w in zip(d, range(k, 1, -1))) * 10 % 11
            d.append(0 if r == 10 else r)
    return "".join(map(str, d))


def cpf(rng):
    """A CPF with valid check digits (11 digits)."""
    return doc_digits(rng, 9)


def money(x):
    """An amount in reais, to the centavo."""
    return round(x, 2)
