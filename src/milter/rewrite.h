// The message as milters see it, and the message after their changes. Pure:
// the session reads and writes the file (the rewrite runs on a worker).
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "milter/protocol.h"

namespace tern::milter {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Where the header section of `message` ends and how its fields read for
// SMFIC_HEADER: the value without the whitespace after the colon, folded
// lines joined by LF (not CRLF), no final line end, as libmilter documents.
struct MessageParts {
	HeaderList headers;
	size_t body_offset = 0;  // first body byte (past the empty line)
};
MessageParts split_message(std::string_view message);

// The message with the header and body changes applied in order:
// add_header appends, insert_header puts the field at a 0-based position,
// change_header replaces the index-th (1-based) field of that name or
// deletes it when the value is empty (a missing one is added, as sendmail
// does), replace_body replaces the whole body. Other kinds are ignored here.
// New fields are written "Name: value" with CRLF line ends.
std::string apply_modifications(std::string_view message, const std::vector<Modification>& mods);

// Whether any modification changes the message bytes.
bool changes_message(const std::vector<Modification>& mods);

}  // namespace tern::milter
