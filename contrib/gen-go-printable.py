#!/usr/bin/python3
"""Writes src/smtp/go_printable.cpp: the code points that Go's quoting
(strconv.Quote, the %q of the model's reply texts) writes escaped because
they are not printable. Printable there means a letter, mark, number,
punctuation or symbol (Unicode general categories L, M, N, P, S) or the
ASCII space; everything else (controls, format characters, surrogates,
private use, unassigned code points, separators other than the space) is
escaped. The categories come from this Python's unicodedata.

Usage: python3 contrib/gen-go-printable.py > src/smtp/go_printable.cpp
       make format
"""
import unicodedata

from unicode_table import print_opening, print_pair_array


def not_printable(cp):
    if cp == 0x20:
        return False
    return unicodedata.category(chr(cp))[0] in "CZ"


def ranges():
    found, start = [], None
    for cp in range(0x110000):
        if not_printable(cp):
            if start is None:
                start = cp
        elif start is not None:
            found.append((start, cp - 1))
            start = None
    if start is not None:
        found.append((start, 0x10FFFF))
    return found


def main():
    rows = ranges()
    print_opening("gen-go-printable.py", "smtp/go_printable.h", "tern::smtp")
    print_pair_array("Range", "first, last",
                     "Sorted, disjoint, inclusive: the code points Go's quoting escapes.",
                     "not_printable", rows, 4)
    print()
    print("}  // namespace")
    print()
    print("bool go_printable(char32_t cp) {")
    print("\t// The first range that does not end before cp holds it, if any.")
    print("\tconst Range* end = std::end(not_printable);")
    print("\tconst Range* r = std::lower_bound(std::begin(not_printable), end, cp,")
    print("\t                                  [](const Range& range, char32_t c) { return range.last < c; });")
    print("\treturn cp <= 0x10ffff && !(r != end && r->first <= cp);")
    print("}")
    print()
    print("}  // namespace tern::smtp")


main()
