// The control socket's line protocol (src/util/control_protocol.h): words
// survive any bytes, and malformed lines are refused rather than guessed.
#include <doctest/doctest.h>

#include "util/control_protocol.h"

using namespace tern::control;

TEST_CASE("control protocol: words are percent-encoded, empty is a dash") {
	CHECK(encode_word("alice") == "alice");
	CHECK(encode_word("") == "-");
	CHECK(encode_word("-") == "%2D");
	CHECK(encode_word("a b\nc%") == "a%20b%0Ac%25");
	CHECK(encode_word(std::string("\0\xff", 2)) == "%00%FF");
	CHECK(decode_word("-") == std::string());
	CHECK(decode_word("a%20b%0ac") == std::string("a b\nc"));
	CHECK(decode_word("%2D") == std::string("-"));
	CHECK_FALSE(decode_word(""));
	CHECK_FALSE(decode_word("a-b"));  // a raw '-' is never produced
	CHECK_FALSE(decode_word("%4"));   // truncated escape
	CHECK_FALSE(decode_word("ab%"));
	CHECK_FALSE(decode_word("%zz"));
}

TEST_CASE("control protocol: requests round-trip") {
	std::vector<std::string> words{"passwd", "alice", std::string("bl\0b \r\n-", 8)};
	std::string line = format_request(words);
	CHECK(line.back() == '\n');
	CHECK(line.find('\n') == line.size() - 1);
	CHECK(parse_request(line) == words);
	CHECK(parse_request("queue kick\r\n") == std::vector<std::string>{"queue", "kick"});
	CHECK(parse_request("queue - x") == std::vector<std::string>{"queue", "", "x"});
	CHECK_FALSE(parse_request(""));
	CHECK_FALSE(parse_request("\n"));
	CHECK_FALSE(parse_request("queue  kick"));  // an empty word is "-", never nothing
	CHECK_FALSE(parse_request("queue kick "));
	CHECK_FALSE(parse_request(std::string(max_request_line + 1, 'a')));
	CHECK(parse_request(std::string(max_request_line, 'a')));
}

TEST_CASE("control protocol: answers round-trip") {
	Answer a{1, "", "no such message\n"};
	CHECK(format_answer(a) == "1 - no%20such%20message%0A\n");
	CHECK(parse_answer(format_answer(a)) == a);
	Answer big{0, std::string(100000, 'x') + "\n", ""};
	CHECK(parse_answer(format_answer(big)) == big);
	CHECK_FALSE(parse_answer(""));
	CHECK_FALSE(parse_answer("0 -"));
	CHECK_FALSE(parse_answer("x - -"));
	CHECK_FALSE(parse_answer("256 - -"));
	CHECK_FALSE(parse_answer("-1 - -"));
	CHECK_FALSE(parse_answer("0 - - -"));
}
