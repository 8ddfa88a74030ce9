#pragma once

namespace tern::smtp {

// Whether Go's quoting writes the code point as it is: a letter, mark,
// number, punctuation or symbol, or the ASCII space. The model's reply
// texts quote odd input that way (doc/behaviour.md §0, "Quoted input in
// replies"); every other code point is written as an escape.
bool go_printable(char32_t cp);

}  // namespace tern::smtp
