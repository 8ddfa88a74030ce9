// Pure helpers of the outbound queue (src/queue/outbound_util.h).
#include <doctest/doctest.h>

#include "queue/outbound_util.h"
#include "util/strings.h"

using namespace tern::queue;
using tern::mailauth::MxRecord;

TEST_CASE("queue reply parser: single line with enhanced code") {
	ReplyParser p;
	CHECK(p.feed_line("550 5.1.1 no such user"));
	CHECK(p.error() == "");
	Reply r = p.take();
	CHECK(r.code == 550);
	CHECK(r.enhanced == "5.1.1");
	CHECK(r.text() == "no such user");
	CHECK(r.summary() == "550 5.1.1 no such user");
}

TEST_CASE("queue reply parser: multi-line EHLO reply") {
	ReplyParser p;
	CHECK_FALSE(p.feed_line("250-mx.example.org"));
	CHECK_FALSE(p.feed_line("250-PIPELINING"));
	CHECK(p.feed_line("250 STARTTLS"));
	Reply r = p.take();
	CHECK(r.code == 250);
	CHECK(r.enhanced == "");
	REQUIRE(r.lines.size() == 3);
	CHECK(r.lines[2] == "STARTTLS");
	// The parser is reset for the next reply.
	CHECK(p.feed_line("221"));
	CHECK(p.take().code == 221);
}

// A refusal's later lines often say why (a policy page, the address
// refused): the error text keeps every line, each without its repeated
// enhanced code, joined by spaces.
TEST_CASE("queue reply parser: a multi-line refusal's text keeps every line") {
	ReplyParser p;
	CHECK_FALSE(p.feed_line("550-5.7.1 [192.0.2.1] The message was refused"));
	CHECK_FALSE(p.feed_line("550-5.7.1 as unsolicited mail; see"));
	CHECK(p.feed_line("550 5.7.1 https://mx.example/policy"));
	Reply r = p.take();
	CHECK(r.text() == "[192.0.2.1] The message was refused as unsolicited mail; see https://mx.example/policy");
	CHECK(r.summary() ==
	      "550 5.7.1 [192.0.2.1] The message was refused as unsolicited mail; see https://mx.example/policy");
	// Lines without the enhanced code, and empty ones, join as they are.
	CHECK_FALSE(p.feed_line("451-4.3.0 busy"));
	CHECK_FALSE(p.feed_line("451-"));
	CHECK(p.feed_line("451 try later"));
	CHECK(p.take().text() == "busy try later");
	// A text too long for an error line is cut, at a UTF-8 boundary: lines
	// of 34 "x" and an "é" (37 bytes with the joining space) put the 27th
	// line's "é" across the cut at 997, so the cut backs off before it.
	for (int i = 0; i < 99; i++) CHECK_FALSE(p.feed_line("550-5.1.1 " + std::string(34, 'x') + "\xc3\xa9"));
	CHECK(p.feed_line("550 5.1.1 end"));
	std::string text = p.take().text();
	CHECK(text.size() == 999);
	CHECK(text.substr(990) == "xxxxxx...");
	CHECK(tern::valid_utf8(text));
}

TEST_CASE("queue reply parser: enhanced code class must match the reply class") {
	ReplyParser p;
	CHECK(p.feed_line("451 5.1.1 odd"));
	CHECK(p.take().enhanced == "");
	CHECK(p.feed_line("452 4.3.1 out of space"));
	CHECK(p.take().enhanced == "4.3.1");
	CHECK(p.feed_line("250 2.0.0"));
	CHECK(p.take().enhanced == "2.0.0");
}

TEST_CASE("queue reply parser: malformed lines") {
	ReplyParser p;
	CHECK(p.feed_line("hello"));
	CHECK(p.error() == "malformed reply line");
	p.take();
	CHECK_FALSE(p.feed_line("250-a"));
	CHECK(p.feed_line("251 b"));
	CHECK(p.error() == "reply lines with different codes");
}

TEST_CASE("queue reply parser: a code outside 200-599 is no reply") {
	// RFC 5321 4.2.1: a 6xx would otherwise read as permanent (>= 500).
	for (const char* line : {"000 zero", "199 preliminary", "600 six", "999-nine"}) {
		ReplyParser p;
		CHECK(p.feed_line(line));
		CHECK(p.error() == "reply code outside 200-599");
	}
	ReplyParser p;
	CHECK(p.feed_line("599 last"));
	CHECK(p.error() == "");
	CHECK(p.take().code == 599);
}

TEST_CASE("reply_line_code: three digits, then the end, a space or a hyphen") {
	CHECK(tern::smtp::reply_line_code("250") == 250);
	CHECK(tern::smtp::reply_line_code("550 5.1.1 no") == 550);
	CHECK(tern::smtp::reply_line_code("421-busy") == 421);
	CHECK(tern::smtp::reply_line_code("000 x") == 0);
	CHECK(tern::smtp::reply_line_code("25") == -1);
	CHECK(tern::smtp::reply_line_code("2500") == -1);
	CHECK(tern::smtp::reply_line_code("connect: refused") == -1);
	CHECK(tern::smtp::reply_code_in_range(200));
	CHECK(tern::smtp::reply_code_in_range(599));
	CHECK_FALSE(tern::smtp::reply_code_in_range(600));
	CHECK_FALSE(tern::smtp::reply_code_in_range(199));
}

TEST_CASE("queue reply parser: a reply is at most 1000 lines and 64 KiB") {
	SUBCASE("lines") {
		ReplyParser p;
		for (size_t i = 0; i + 1 < ReplyParser::max_reply_lines; ++i) REQUIRE_FALSE(p.feed_line("250-"));
		CHECK(p.feed_line("250 last"));
		CHECK(p.error() == "");
		CHECK(p.take().lines.size() == ReplyParser::max_reply_lines);
		// The parser starts afresh: another long reply, one line too many.
		for (size_t i = 0; i < ReplyParser::max_reply_lines; ++i) REQUIRE_FALSE(p.feed_line("250-"));
		CHECK(p.feed_line("250-"));
		CHECK(p.error() == "reply too long");
	}
	SUBCASE("bytes") {
		ReplyParser p;
		const std::string line = "250-" + std::string(1020, 'x');  // 1026 bytes with CRLF
		size_t fed = 0;
		while (!p.feed_line(line)) ++fed;
		CHECK(p.error() == "reply too long");
		CHECK(fed == ReplyParser::max_reply_bytes / 1026);
	}
}

static std::string stuff(std::vector<std::string> chunks) {
	DotStuffer s;
	std::string out;
	for (auto& c : chunks) s.feed(c, out);
	s.finish(out);
	return out;
}

TEST_CASE("dot-stuffing: lines starting with a dot get another one") {
	CHECK(stuff({"Subject: x\r\n\r\n.hidden\r\n..two\r\nend\r\n"}) ==
	      "Subject: x\r\n\r\n..hidden\r\n...two\r\nend\r\n.\r\n");
	// A dot in the middle of a line is left alone.
	CHECK(stuff({"a.b\r\n"}) == "a.b\r\n.\r\n");
	// The very first byte is a line start too.
	CHECK(stuff({".\r\n"}) == "..\r\n.\r\n");
}

TEST_CASE("dot-stuffing: chunk boundaries do not matter") {
	std::string whole = "x\r\n.y\r\n.\r\nz";
	std::string expected = "x\r\n..y\r\n..\r\nz\r\n.\r\n";
	CHECK(stuff({whole}) == expected);
	CHECK(stuff({"x\r", "\n", ".y\r\n", ".", "\r\nz"}) == expected);
	CHECK(stuff({"x\r\n", "", ".y\r\n.\r", "\nz"}) == expected);
}

TEST_CASE("dot-stuffing: body end") {
	CHECK(stuff({}) == ".\r\n");
	CHECK(stuff({"no newline"}) == "no newline\r\n.\r\n");
	CHECK(stuff({"ends with cr\r"}) == "ends with cr\r\r\n.\r\n");
}

TEST_CASE("retry delay doubles per attempt") {
	CHECK(retry_delay_seconds(450, 0) == 450);
	CHECK(retry_delay_seconds(450, 1) == 900);
	CHECK(retry_delay_seconds(450, 4) == 7200);
	CHECK(retry_delay_seconds(450, 7) == 57600);
	CHECK(retry_delay_seconds(450, 1, -5) == 895);
	CHECK(retry_delay_seconds(1, 0, -3) == 1);  // never zero or negative
}

TEST_CASE("MX hosts in preference order, null MX") {
	auto hosts = mx_hosts_in_order({{20, "b.example"}, {10, "a.example"}, {20, "c.example"}, {10, "a.example"}});
	REQUIRE(hosts);
	CHECK(*hosts == std::vector<std::string>{"a.example", "b.example", "c.example"});
	CHECK_FALSE(mx_hosts_in_order({{0, ""}}));
	auto mixed = mx_hosts_in_order({{0, ""}, {5, "x.example"}});
	REQUIRE(mixed);
	CHECK(*mixed == std::vector<std::string>{"x.example"});
}

TEST_CASE("address helpers") {
	CHECK(address_literal("[192.0.2.1]") == std::optional<std::string>("192.0.2.1"));
	CHECK(address_literal("[IPv6:2001:db8::1]") == std::optional<std::string>("2001:db8::1"));
	CHECK_FALSE(address_literal("example.org"));
	CHECK(message_base("1700000000-ab12.3") == "1700000000-ab12");
	CHECK(tern::iso8601_utc(0) == "1970-01-01T00:00:00Z");
	CHECK(tern::iso8601_utc(1700000000) == "2023-11-14T22:13:20Z");
}

TEST_CASE("dual-stack hosts: which family an attempt dials first") {
	const std::vector<std::string> both = {"192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"};
	CHECK(dual_stack(both));
	CHECK_FALSE(dual_stack({"192.0.2.1", "192.0.2.2"}));
	CHECK_FALSE(dual_stack({"2001:db8::1"}));
	CHECK_FALSE(dual_stack({}));
	CHECK_FALSE(dual_stack({"192.0.2.1", "::ffff:192.0.2.2"}));  // IPv4-mapped is IPv4
	// The first attempt keeps the lookup's order (IPv4, then IPv6); the
	// next starts with IPv6, the third with IPv4 again; within a family
	// the order stays.
	CHECK(addresses_for_attempt(both, 1) == both);
	CHECK(addresses_for_attempt(both, 2) ==
	      std::vector<std::string>{"2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2"});
	CHECK(addresses_for_attempt(both, 3) == both);
	CHECK(addresses_for_attempt({"2001:db8::1", "192.0.2.1"}, 1) ==
	      std::vector<std::string>{"192.0.2.1", "2001:db8::1"});
	// One family: nothing to alternate.
	CHECK(addresses_for_attempt({"192.0.2.2", "192.0.2.1"}, 2) ==
	      std::vector<std::string>{"192.0.2.2", "192.0.2.1"});
}

TEST_CASE("dual-stack hosts: a 5.7 refusal on the first attempt is retried") {
	CHECK(retry_policy_refusal("5.7.1", 1, true));
	CHECK(retry_policy_refusal("5.7.25", 1, true));
	// Not on a later attempt, not from a host of one family, not for
	// another class of refusal or a reply without an enhanced code.
	CHECK_FALSE(retry_policy_refusal("5.7.1", 2, true));
	CHECK_FALSE(retry_policy_refusal("5.7.1", 1, false));
	CHECK_FALSE(retry_policy_refusal("5.1.1", 1, true));
	CHECK_FALSE(retry_policy_refusal("", 1, true));
	CHECK_FALSE(retry_policy_refusal("5.77.1", 1, true));
}
