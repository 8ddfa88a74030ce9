#!/usr/bin/python3
"""Writes src/util/go_lower.cpp: the simple lower-case mapping of each
code point that has one (Unicode's UnicodeData.txt, field 13), which is
what Go's unicode.ToLower, and so strings.ToLower, applies one code point
at a time. The model lower-cases localparts with strings.ToLower. The
mappings come from this Python's unicodedata: str.lower() is the full
mapping, which equals the simple one except where SpecialCasing gives
more than one code point (only U+0130, whose simple mapping is U+0069).

Usage: python3 contrib/gen-go-lower.py > src/util/go_lower.cpp
       make format
"""
from unicode_table import print_opening, print_pair_array

# Full mappings of more than one code point: their simple mapping.
SIMPLE = {0x130: 0x69}


def pairs():
    found = []
    for cp in range(0x110000):
        lower = chr(cp).lower()
        if lower == chr(cp):
            continue
        if len(lower) == 1:
            found.append((cp, ord(lower)))
        elif cp in SIMPLE:
            found.append((cp, SIMPLE[cp]))
        else:
            raise SystemExit("no simple mapping known for U+%04X" % cp)
    return found


def main():
    rows = pairs()
    print_opening("gen-go-lower.py", "util/go_lower.h", "tern", ["util/strings.h"])
    print_pair_array("Lower", "upper, lower",
                     "Sorted by code point: each one that has a simple lower-case mapping.",
                     "simple_lower", rows, 5)
    print()
    print("char32_t lower_of(char32_t cp) {")
    print("\tconst Lower* end = std::end(simple_lower);")
    print("\tconst Lower* it = std::lower_bound(std::begin(simple_lower), end, cp,")
    print("\t                                   [](const Lower& l, char32_t c) { return l.upper < c; });")
    print("\treturn it != end && it->upper == cp ? it->lower : cp;")
    print("}")
    print()
    print("}  // namespace")
    print()
    print("std::string go_lower(std::string_view text) {")
    print("\tstd::string out;")
    print("\tout.reserve(text.size());")
    print("\tfor (size_t i = 0; i < text.size();) {")
    print("\t\tconst unsigned char c = static_cast<unsigned char>(text[i]);")
    print("\t\tif (c < 0x80) {")
    print("\t\t\tout += static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);")
    print("\t\t\ti++;")
    print("\t\t\tcontinue;")
    print("\t\t}")
    print("\t\tconst Utf8Rune rune = decode_utf8(text.substr(i));")
    print("\t\t// A byte that is no UTF-8 stays as it is (input is checked before).")
    print("\t\tif (rune.valid)")
    print("\t\t\tappend_utf8(out, lower_of(rune.cp));")
    print("\t\telse")
    print("\t\t\tout.append(text.substr(i, rune.len));")
    print("\t\ti += rune.len;")
    print("\t}")
    print("\treturn out;")
    print("}")
    print()
    print("}  // namespace tern")


main()
