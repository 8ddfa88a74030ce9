// Lower case as the model makes it for localparts (Go's strings.ToLower):
// each code point by its simple Unicode mapping, so "ÄRGER" is "ärger"
// and "JÖRG" is "jörg" (doc/behaviour.md §9).
#pragma once
#include <string>
#include <string_view>

namespace tern {

// `text` with every code point that has a simple lower-case mapping
// replaced by it (ASCII letters included); bytes that are no UTF-8 are
// kept. The length may change (U+023A is two bytes, its lower case three).
std::string go_lower(std::string_view text);

}  // namespace tern
