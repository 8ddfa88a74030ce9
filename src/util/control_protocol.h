// The line protocol of ternd's local control socket (`<data_dir>/control.sock`,
// man/ternd.8 "CONTROL SOCKET"), through which ternctl changes the database
// while ternd runs. Pure encoding; the socket ends live in src/server/control
// and src/ternctl.cpp.
//
// One request per connection, one line: the command's words separated by
// single spaces, each word percent-encoded (every byte outside '!'..'~',
// '%' and '-' become %XX; an empty word is a lone "-"), ended by LF.
// The answer is one line of three words: the exit status ternctl returns,
// then what it prints on stdout and on stderr, encoded the same way.
// The connection closes after the answer.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::control {

// Requests longer than this (without LF) are refused; a password blob and
// an account name fit many times over, and so do the words of a message
// for `junk check` / `junk train` (at most 256 KiB of text, encoded).
inline constexpr size_t max_request_line = 4 * 1024 * 1024;

struct Answer {
	int status = 0;
	std::string out;  // ternctl's stdout
	std::string err;  // ternctl's stderr

	bool operator==(const Answer&) const = default;
};

std::string encode_word(std::string_view word);
std::optional<std::string> decode_word(std::string_view encoded);

// words → "w1 w2 …\n"; an empty list encodes as an empty line, which
// parse_request refuses.
std::string format_request(const std::vector<std::string>& words);
// One line without its LF (a CR before it is tolerated); nullopt when
// empty, malformed or too long.
std::optional<std::vector<std::string>> parse_request(std::string_view line);

std::string format_answer(const Answer& answer);
std::optional<Answer> parse_answer(std::string_view line);

}  // namespace tern::control
