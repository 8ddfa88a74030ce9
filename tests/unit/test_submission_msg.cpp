// Submission-path message helpers: From extraction, header lookups,
// Message-Id and Date (doc/behaviour.md §7, §8).
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "message/submission.h"
#include "smtp/parser.h"
#include "util/base64.h"

using namespace tern::message;

namespace {

FromResult from_of(const std::string& header_lines) { return parse_single_from(header_lines + "\r\nbody\r\n"); }

// Checks a From header gives `local@domain` (ASCII domain form).
void check_from(const std::string& header_lines, const std::string& localpart, const std::string& domain_ascii) {
	CAPTURE(header_lines);
	FromResult r = from_of(header_lines);
	CHECK(r.ok);
	CHECK(r.error == "");
	CHECK(r.address.localpart == localpart);
	CHECK(r.address.domain.ascii == domain_ascii);
	CHECK_FALSE(r.address.ip.has_value());
}

void check_from_error(const std::string& header_lines, const std::string& error) {
	CAPTURE(header_lines);
	FromResult r = from_of(header_lines);
	CHECK_FALSE(r.ok);
	CHECK(r.error == error);
}

}  // namespace

TEST_CASE("submission: a From domain with a label over 63 octets is taken, as the model takes it; commands refuse it") {
	const std::string long_label(64, 'x');
	check_from("From: ceo@" + long_label + ".Example.ORG\r\n", "ceo", long_label + ".example.org");
	CHECK_FALSE(tern::smtp::parse_domain(long_label + ".example.org"));
	CHECK_FALSE(tern::smtp::parse_address("ceo@" + long_label + ".example.org"));
	CHECK(tern::smtp::parse_header_domain(long_label + ".example.org"));
	// Still refused in headers: what the IDNA rules refuse, and a name over
	// 255 octets.
	check_from_error("From: ceo@x-.example.org\r\n", "bad domain in from address: x-.example.org");
	std::string huge;
	for (int i = 0; i < 5; i++) huge += long_label + ".";
	CHECK_FALSE(from_of("From: ceo@" + huge + "org\r\n").ok);
}

TEST_CASE("submission: From with one mailbox in its RFC 5322 forms") {
	check_from("From: alice@example.org\r\n", "alice", "example.org");
	check_from("From: <alice@example.org>\r\n", "alice", "example.org");
	check_from("From: Alice <alice@example.org>\r\n", "alice", "example.org");
	check_from("From: Alice Liddell <alice@Example.ORG>\r\n", "alice", "example.org");
	// A comma and angle brackets inside a quoted display name are text.
	check_from("From: \"Liddell, Alice <x@y.example>\" <alice@example.org>\r\n", "alice", "example.org");
	// Comments, nested and with a quoted-pair, anywhere CFWS is allowed.
	check_from("From: alice@example.org (Alice (the \\) one))\r\n", "alice", "example.org");
	check_from("From: (c) Alice (c) < (c) alice (c) @ (c) example.org (c) > (c)\r\n", "alice", "example.org");
	// Folded over several lines (RFC 5322 2.2.3).
	check_from("From: Alice\r\n\t<alice@example.org>\r\n", "alice", "example.org");
	check_from("From:\r\n alice@example.org\r\n", "alice", "example.org");
	// Quoted localparts, with quoted-pairs resolved.
	check_from("From: \"alice smith\"@example.org\r\n", "alice smith", "example.org");
	check_from("From: Al <\"a\\\"b\"@example.org>\r\n", "a\"b", "example.org");
	check_from("From: first.last@example.org\r\n", "first.last", "example.org");
	// obs-phrase: a dot in an unquoted display name (common in the wild).
	check_from("From: John Q. Public <jqp@example.org>\r\n", "jqp", "example.org");
	// RFC 2047 encoded words are atoms to the address parser.
	check_from("From: =?utf-8?q?J=C3=B6hn?= <john@example.org>\r\n", "john", "example.org");
	// obs-route before the addr-spec is skipped.
	check_from("From: <@relay.example:alice@example.org>\r\n", "alice", "example.org");
	// Case-insensitive field name; empty list elements (obs-mbox-list).
	check_from("FROM: alice@example.org\r\n", "alice", "example.org");
	check_from("From: , alice@example.org ,\r\n", "alice", "example.org");
	// Other fields do not matter.
	check_from("To: bob@example.org, carol@example.org\r\nFrom: alice@example.org\r\nSubject: x\r\n", "alice",
	           "example.org");
}

TEST_CASE("submission: From with UTF-8 (RFC 6532)") {
	check_from("From: Jöhn <jöhn@example.org>\r\n", "jöhn", "example.org");
	check_from("From: \"Jöhn Dœ\" <用户@example.org>\r\n", "用户", "example.org");
	FromResult r = from_of("From: alice@bücher.example\r\n");
	REQUIRE(r.ok);
	CHECK(r.address.domain.ascii == "xn--bcher-kva.example");
	CHECK(r.address.domain.unicode == "bücher.example");
	CHECK(r.address.to_string() == "alice@bücher.example");
	// Invalid UTF-8 in the localpart is refused.
	check_from_error("From: a\xff@example.org\r\n", "parsing localpart in from address: a\xff");
}

TEST_CASE("submission: From refused") {
	check_from_error("Subject: no from\r\n", "missing or duplicate from header: 0 headers");
	check_from_error("From: a@example.org\r\nFrom: b@example.org\r\n",
	                 "missing or duplicate from header: 2 headers");
	check_from_error("From: a@example.org, b@example.org\r\n",
	                 "from header does not have exactly one address: 2 addresses");
	check_from_error("From: A <a@example.org>, \"B\" <b@example.org>\r\n",
	                 "from header does not have exactly one address: 2 addresses");
	check_from_error("From: \r\n", "from header does not have exactly one address: 0 addresses");
	check_from_error("From: (only a comment)\r\n", "from header does not have exactly one address: 0 addresses");
	check_from_error("From: Team: a@example.org, b@example.org;\r\n",
	                 "malformed from header: group syntax not allowed");
	check_from_error("From: Undisclosed:;\r\n", "malformed from header: group syntax not allowed");
	check_from_error("From: alice\r\n", "malformed from header: address without \"@\"");
	check_from_error("From: Alice <alice>\r\n", "malformed from header: expected \"@\" in address, got \">\"");
	check_from_error("From: Alice <alice@example.org\r\n",
	                 "malformed from header: expected \">\" after address, got end of header");
	check_from_error("From: <>\r\n", "malformed from header: empty angle address");
	check_from_error("From: \"alice@example.org\r\n", "malformed from header: unterminated quoted string");
	check_from_error("From: alice@example.org (x\r\n", "malformed from header: unterminated comment");
	check_from_error("From: a..b@example.org\r\n", "malformed from header: malformed localpart");
	check_from_error("From: .a@example.org\r\n", "malformed from header: malformed localpart");
	check_from_error("From: a.@example.org\r\n", "malformed from header: localpart ends with a dot");
	check_from_error("From: @example.org\r\n", "malformed from header: missing localpart");
	check_from_error("From: a@\r\n", "malformed from header: missing domain");
	check_from_error("From: a@example.org x\r\n",
	                 "malformed from header: unexpected character \"x\" after address");
	check_from_error("From: a@[192.0.2.1]\r\n", "bad domain in from address: [192.0.2.1]");
	check_from_error("From: a@exa$mple.org\r\n", "bad domain in from address: exa$mple.org");

	// A header section that cannot be split.
	FromResult r = parse_single_from(std::string_view("From alice@example.org\r\n\r\n"));
	CHECK_FALSE(r.ok);
	CHECK(r.error.starts_with("parsing message header: "));
	CHECK(r.error.size() > std::string("parsing message header: ").size());
}

TEST_CASE("submission: header presence and values") {
	auto section = parse_header_section(
	    "From: a@example.org\r\nreturn-path: <x@y>\r\nSubject:  a\r\n  b \r\n"
	    "Subject: second\r\nMessage-Id:\r\n\r\nbody");
	REQUIRE(section);
	CHECK(has_header(*section, "Return-Path"));
	CHECK(has_header(*section, "RETURN-PATH"));
	CHECK(has_header(*section, "message-id"));
	CHECK_FALSE(has_header(*section, "Date"));
	CHECK_FALSE(has_header(*section, "Return"));
	CHECK(header_value(*section, "subject") == std::optional<std::string>("a  b"));
	CHECK(header_value(*section, "Return-Path") == std::optional<std::string>("<x@y>"));
	// Present but empty: the caller treats it as missing, as the model does.
	CHECK(header_value(*section, "Message-Id") == std::optional<std::string>(""));
	CHECK(header_value(*section, "Date") == std::nullopt);
}

TEST_CASE("submission: Message-Id and Date fields") {
	std::set<std::string> seen;
	for (int i = 0; i < 50; i++) {
		std::string id = make_message_id("mail.example.org");
		REQUIRE(id.size() == 22 + 1 + 16);
		CHECK(id.substr(22) == "@mail.example.org");
		std::string token = id.substr(0, 22);
		for (char c : token)
			CHECK(((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
			       c == '_'));
		auto raw = tern::base64url_decode_nopad(token);
		REQUIRE(raw);
		CHECK(raw->size() == 16);
		seen.insert(id);
	}
	CHECK(seen.size() == 50);  // random: no repeats
	CHECK(make_message_id("bücher.example").ends_with("@bücher.example"));

	CHECK(message_id_header("abc@mail.example.org") == "Message-Id: <abc@mail.example.org>\r\n");
	// Go's reference time, Mon Jan 2 15:04:05 -0700 2006; no day-of-week as the model.
	CHECK(date_header(1136239445, -7 * 3600) == "Date: 2 Jan 2006 15:04:05 -0700\r\n");
	CHECK(date_header(1136239445) == "Date: 2 Jan 2006 22:04:05 +0000\r\n");
}

TEST_CASE("first From: port 25's DMARC reads the first From field however many follow; none is an error") {
	auto first = [](const std::string& header_lines) {
		std::optional<HeaderSection> section = parse_header_section(header_lines + "\r\nbody\r\n");
		REQUIRE(section);
		return parse_first_from(*section);
	};
	FromResult two = first("From: ceo@victim.example\r\nFrom: me@mine.example\r\nSubject: x\r\n");
	CHECK(two.ok);
	CHECK(two.address.domain.ascii == "victim.example");
	// The single-From rule of submission still refuses the same header.
	check_from_error("From: ceo@victim.example\r\nFrom: me@mine.example\r\n",
	                 "missing or duplicate from header: 2 headers");
	FromResult none = first("Subject: x\r\n");
	CHECK_FALSE(none.ok);
	CHECK(none.error == "missing from header");
	FromResult list = first("From: a@one.example, b@two.example\r\nFrom: c@three.example\r\n");
	CHECK_FALSE(list.ok);
	CHECK(list.error == "from header does not have exactly one address: 2 addresses");
}
