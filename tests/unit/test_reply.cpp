// Reply formatting: enhanced codes, multi-line replies and the model's
// 510-column wrapping (doc/behaviour.md §0).
#include <doctest/doctest.h>

#include <string>

#include "smtp/replies.h"
#include "smtp/reply.h"

using tern::smtp::enhanced_code;
using tern::smtp::format_reply;

TEST_CASE("enhanced_code joins the class digit and the secondary code") {
	CHECK(enhanced_code(501, "5.2") == "5.5.2");
	CHECK(enhanced_code(250, "1.0") == "2.1.0");
	CHECK(enhanced_code(451, "4.0") == "4.4.0");
	CHECK(enhanced_code(535, "7.8") == "5.7.8");
	CHECK(enhanced_code(250, "") == "");
}

TEST_CASE("single line replies") {
	CHECK(format_reply(250, "0.0", "alrighty") == "250 2.0.0 alrighty\r\n");
	CHECK(format_reply(501, "5.2", "bad syntax: expected \" \"") == "501 5.5.2 bad syntax: expected \" \"\r\n");
	// Without an enhanced code there is no extra space.
	CHECK(format_reply(250, "", "PIPELINING") == "250 PIPELINING\r\n");
	CHECK(format_reply(334, "", "") == "334 \r\n");
}

TEST_CASE("multi-line replies repeat code and enhanced code") {
	CHECK(format_reply(250, "", "localhost\nPIPELINING\nSMTPUTF8") ==
	      "250-localhost\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n");
	CHECK(format_reply(550, "7.1", "first\nsecond") == "550-5.7.1 first\r\n550 5.7.1 second\r\n");
	// A trailing newline gives an empty last line, as the model does.
	CHECK(format_reply(250, "0.0", "a\n") == "250-2.0.0 a\r\n250 2.0.0 \r\n");
}

TEST_CASE("a line of exactly 510 characters is not wrapped") {
	// prefix "550 5.7.1 " is 10 characters.
	std::string text(500, 'x');
	std::string out = format_reply(550, "7.1", text);
	CHECK(out == "550 5.7.1 " + text + "\r\n");
	CHECK(out.size() == 512);
}

TEST_CASE("long lines wrap at the last space at or after offset 400") {
	// 450 x's, a space, 100 y's: the text is 551 long, prefix 10, limit at
	// offset 500; the space at 450 is found searching back.
	std::string text = std::string(450, 'x') + " " + std::string(100, 'y');
	std::string out = format_reply(550, "7.1", text);
	CHECK(out == "550-5.7.1 " + std::string(450, 'x') + "\r\n" + "550 5.7.1  " + std::string(100, 'y') + "\r\n");
}

TEST_CASE("long lines without a usable space are cut at offset 400") {
	// A space only at offset 300 (below 400) does not count.
	std::string text = std::string(300, 'a') + " " + std::string(299, 'b');
	REQUIRE(text.size() == 600);
	std::string out = format_reply(501, "5.2", text);
	std::string first = text.substr(0, 400);
	std::string second = text.substr(400);
	CHECK(out == "501-5.5.2 " + first + "\r\n" + "501 5.5.2 " + second + "\r\n");
}

TEST_CASE("very long lines wrap several times; no ecode means a 4-char prefix") {
	std::string text(1000, 'z');
	// prefix "250-" is 4: limit offset 506, no space → cut at 400 each time.
	std::string out = format_reply(250, "", text);
	CHECK(out ==
	      "250-" + std::string(400, 'z') + "\r\n" + "250-" + std::string(400, 'z') + "\r\n" + "250 " +
	          std::string(200, 'z') + "\r\n");
	// A space exactly at the limit offset is used.
	std::string spaced = std::string(506, 'q') + " tail";
	CHECK(format_reply(250, "", spaced) == "250-" + std::string(506, 'q') + "\r\n250  tail\r\n");
}

TEST_CASE("wrapping applies to each line of a multi-line reply") {
	std::string long_line = std::string(420, 'm') + " " + std::string(200, 'n');
	std::string out = format_reply(550, "0.0", "short\n" + long_line);
	CHECK(out ==
	      "550-5.0.0 short\r\n"
	      "550-5.0.0 " +
	          std::string(420, 'm') +
	          "\r\n"
	          "550 5.0.0  " +
	          std::string(200, 'n') + "\r\n");
}

TEST_CASE("storage_failure: a full disk is 452 4.3.1, any other write failure 451 4.3.0, with the same text") {
	tern::smtp::SmtpError full = tern::smtp::replies::storage_failure(true, "error writing message");
	CHECK(full.code == 452);
	CHECK(enhanced_code(full.code, full.secode) == "4.3.1");
	CHECK(full.text == "error writing message");
	CHECK(full.with_id);
	tern::smtp::SmtpError other = tern::smtp::replies::storage_failure(false, "error writing message");
	CHECK(other.code == 451);
	CHECK(enhanced_code(other.code, other.secode) == "4.3.0");
	CHECK(other.text == "error writing message");
}
