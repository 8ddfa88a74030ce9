// The milter protocol (src/milter/protocol.h) and the message changes
// (src/milter/rewrite.h), on scripted byte streams: what the MTA writes, and
// what it makes of what a milter answers.
#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "milter/protocol.h"
#include "milter/rewrite.h"

namespace m = tern::milter;
using m::Outcome;

namespace {

std::string u32(uint32_t v) {
	std::string s;
	for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
	return s;
}

// A milter's OPTNEG answer.
std::string optneg_reply(uint32_t version, uint32_t actions, uint32_t flags, std::string extra = {}) {
	return m::encode_packet('O', u32(version) + u32(actions) + u32(flags) + extra);
}

std::string pkt(char code, std::string data = {}) { return m::encode_packet(code, data); }

// A conversation past negotiation with the given flags and actions.
m::Conversation negotiated(uint32_t flags, uint32_t actions = m::offered_actions) {
	m::Conversation c;
	std::string first = c.take_output();
	REQUIRE(first == pkt('O', u32(6) + u32(m::offered_actions) + u32(m::offered_flags)));
	REQUIRE(c.awaiting_reply());
	m::Step s = c.on_bytes(optneg_reply(6, actions, flags));
	REQUIRE(s.outcome == Outcome::negotiated);
	REQUIRE(c.idle());
	return c;
}

// The command bytes of each packet in a byte stream.
std::string codes(std::string_view bytes) {
	m::PacketReader r;
	r.feed(bytes);
	std::string out;
	while (auto p = r.next()) out.push_back(p->code);
	REQUIRE_FALSE(r.failed());
	return out;
}

}  // namespace

TEST_CASE("milter packets: length, command, data; split at every byte") {
	std::string wire = pkt('c') + pkt('y', std::string("550 5.7.1 no\0", 13));
	CHECK(wire.substr(0, 5) == std::string("\0\0\0\1c", 5));
	for (size_t cut = 0; cut <= wire.size(); ++cut) {
		m::PacketReader r;
		r.feed(wire.substr(0, cut));
		int got = 0;
		while (r.next()) ++got;
		r.feed(wire.substr(cut));
		while (auto p = r.next()) {
			++got;
			if (p->code == 'y') CHECK(p->data == std::string("550 5.7.1 no\0", 13));
		}
		CHECK(got == 2);
		CHECK(r.buffered() == 0);
	}
}

TEST_CASE("milter packets: length 0 and oversized lengths are errors, not waits") {
	m::PacketReader zero;
	zero.feed(std::string("\0\0\0\0", 4));
	CHECK_FALSE(zero.next());
	CHECK(zero.failed());

	m::PacketReader huge;
	huge.feed(u32(m::max_packet + 1) + "c");
	CHECK_FALSE(huge.next());
	CHECK(huge.failed());
	CHECK(huge.error().find("too long") != std::string::npos);
}

TEST_CASE("milter negotiation: version 6, the milter's subset, macro lists") {
	std::string error;
	auto n = m::parse_optneg_reply(
	    {'O', u32(6) + u32(0x01) + u32(0x1000) + u32(1) + std::string("{mail_addr} i\0", 14)}, error);
	REQUIRE(n);
	CHECK(n->version == 6);
	CHECK(n->actions == m::action::add_headers);
	CHECK(n->flags == m::flag::nr_connect);
	REQUIRE(n->macro_lists.count(1) == 1);
	CHECK(n->macro_lists[1] == std::vector<std::string>{"mail_addr", "i"});

	SUBCASE("actions or flags beyond the offer fail") {
		CHECK_FALSE(m::parse_optneg_reply({'O', u32(6) + u32(0x200) + u32(0)}, error));
		CHECK_FALSE(m::parse_optneg_reply({'O', u32(6) + u32(0) + u32(m::flag::rcpt_rej)}, error));
	}
	SUBCASE("bad versions and short packets fail") {
		CHECK_FALSE(m::parse_optneg_reply({'O', u32(7) + u32(0) + u32(0)}, error));
		CHECK_FALSE(m::parse_optneg_reply({'O', u32(1) + u32(0) + u32(0)}, error));
		CHECK_FALSE(m::parse_optneg_reply({'O', u32(6) + u32(0)}, error));
		CHECK_FALSE(m::parse_optneg_reply({'c', u32(6) + u32(0) + u32(0)}, error));
		CHECK_FALSE(m::parse_optneg_reply({'O', u32(6) + u32(0) + u32(0) + u32(2) + "x"}, error));
	}
}

TEST_CASE("milter conversation: a full message with replies for every command") {
	m::Conversation c = negotiated(0);
	m::ConnectInfo info{"[192.0.2.1]", '4', 25000, "192.0.2.1"};
	c.queue_connect(info, {{"j", "mx.example"}, {"{daemon_name}", "tern"}});
	std::string out = c.take_output();
	CHECK(codes(out) == "DC");  // macros first, then the command
	CHECK(out.find(std::string("DC") + "j\0mx.example\0", 0) != std::string::npos);
	CHECK(out.find(std::string("[192.0.2.1]\0"
	                           "4",
	                           13) +
	               "\x61\xa8" + std::string("192.0.2.1\0", 10)) != std::string::npos);
	CHECK(c.take_output().empty());  // nothing more until the reply
	CHECK(c.on_bytes(pkt('c')).outcome == Outcome::next);
	CHECK(c.idle());

	c.queue_mail({"<a@example.org>"}, {{"{mail_addr}", "a@example.org"}});
	CHECK(codes(c.take_output()) == "DM");
	CHECK(c.on_bytes(pkt('c')).outcome == Outcome::next);
	CHECK(c.in_message());

	c.queue_message_start({{"From", "a@example.org"}, {"Subject", "hi"}}, {{"i", "Q1"}});
	CHECK(codes(c.take_output()) == "DT");
	CHECK(c.on_bytes(pkt('c')).outcome == Outcome::next);
	CHECK(codes(c.take_output()) == "L");
	CHECK(c.on_bytes(pkt('c')).outcome == Outcome::next);
	CHECK(codes(c.take_output()) == "L");
	CHECK(c.on_bytes(pkt('c')).outcome == Outcome::next);
	CHECK(codes(c.take_output()) == "N");
	CHECK(c.on_bytes(pkt('c')).outcome == Outcome::next);
	CHECK(c.queue_body("hello\r\n"));
	CHECK(codes(c.take_output()) == "B");
	CHECK(c.on_bytes(pkt('c')).outcome == Outcome::next);
	c.queue_end_of_message({});
	CHECK(codes(c.take_output()) == "E");
	// Changes, progress, then the final answer.
	std::string answer = pkt('h', std::string("X-Test\0yes\0", 11)) + pkt('p') +
	    pkt('m', u32(1) + std::string("Subject\0\0", 9)) + pkt('b', "new ") + pkt('b', "body\r\n") +
	    pkt('q', std::string("suspicious\0", 11)) + pkt('a');
	m::Step s = c.on_bytes(answer);
	CHECK(s.outcome == Outcome::accept);
	REQUIRE(c.modifications().size() == 4);
	CHECK(c.modifications()[0].kind == m::Modification::Kind::add_header);
	CHECK(c.modifications()[1].index == 1);
	CHECK(c.modifications()[2].value == "new body\r\n");
	CHECK(c.modifications()[3].value == "suspicious");
	CHECK_FALSE(c.in_message());
}

TEST_CASE("milter conversation: no-reply and no-send flags are honoured") {
	m::Conversation c = negotiated(m::flag::nr_connect | m::flag::no_helo | m::flag::nr_header | m::flag::no_eoh |
	                               m::flag::no_data | m::flag::no_body);
	c.queue_connect({"[::1]", '6', 1, "::1"}, {});
	c.queue_helo("client.example", {});
	CHECK(codes(c.take_output()) == "C");  // no HELO at all, CONNECT unanswered
	CHECK(c.idle());
	c.queue_mail({"<>"}, {});
	c.queue_message_start({{"A", "1"}, {"B", "2"}}, {});
	CHECK_FALSE(c.queue_body("x"));
	c.queue_end_of_message({});
	CHECK(codes(c.take_output()) == "M");
	CHECK(c.on_bytes(pkt('c')).outcome == Outcome::next);
	// The headers need no replies: they go out together with the end.
	CHECK(codes(c.take_output()) == "LLE");
	CHECK(c.on_bytes(pkt('c')).outcome == Outcome::accept);
	CHECK(c.idle());
}

TEST_CASE("milter conversation: verdicts end the stage") {
	m::Conversation c = negotiated(0);
	c.queue_mail({"<a@example.org>"}, {});
	c.take_output();
	SUBCASE("reject") { CHECK(c.on_bytes(pkt('r')).outcome == Outcome::reject); }
	SUBCASE("tempfail") { CHECK(c.on_bytes(pkt('t')).outcome == Outcome::tempfail); }
	SUBCASE("discard") { CHECK(c.on_bytes(pkt('d')).outcome == Outcome::discard); }
	SUBCASE("custom reply code") {
		m::Step s = c.on_bytes(pkt('y', std::string("451 4.7.0 later\0", 16)));
		CHECK(s.outcome == Outcome::tempfail);
		CHECK(s.reply == "451 4.7.0 later");
	}
	SUBCASE("a reply code that is not 4xx/5xx is garbage") {
		CHECK(c.on_bytes(pkt('y', std::string("250 ok\0", 7))).outcome == Outcome::failed);
	}
	SUBCASE("a header change before the end of the message is garbage") {
		CHECK(c.on_bytes(pkt('h', std::string("A\0b\0", 4))).outcome == Outcome::failed);
	}
	SUBCASE("abort follows an unfinished message") {
		CHECK(c.on_bytes(pkt('a')).outcome == Outcome::accept);
		c.queue_abort();
		CHECK(codes(c.take_output()) == "A");
		c.queue_abort();  // only once
		CHECK(c.take_output().empty());
	}
}

TEST_CASE("milter conversation: skip stops the body") {
	m::Conversation c = negotiated(m::flag::skip);
	c.queue_mail({"<a@example.org>"}, {});
	c.take_output();
	c.on_bytes(pkt('c'));
	CHECK(c.queue_body("chunk one"));
	c.take_output();
	CHECK(c.on_bytes(pkt('s')).outcome == Outcome::next);
	CHECK(c.body_skipped());
	CHECK_FALSE(c.queue_body("chunk two"));
	c.queue_end_of_message({});
	CHECK(codes(c.take_output()) == "E");
}

namespace {

// A conversation with `actions` negotiated, waiting for the milter's
// answer to the end of a message (its MAIL accepted).
m::Conversation at_end_of_message(uint32_t actions) {
	m::Conversation c = negotiated(0, actions);
	c.queue_mail({"<a@example.org>"}, {});
	c.take_output();
	c.on_bytes(pkt('c'));
	c.queue_end_of_message({});
	c.take_output();
	return c;
}

}  // namespace

TEST_CASE("milter conversation: garbage and unasked replies fail") {
	SUBCASE("unexpected packet while nothing is awaited") {
		m::Conversation c = negotiated(0);
		CHECK(c.on_bytes(pkt('c')).outcome == Outcome::failed);
	}
	SUBCASE("a milter that negotiates fewer actions may not use the others") {
		m::Conversation c = at_end_of_message(m::action::add_headers);
		CHECK(c.on_bytes(pkt('b', "new body")).outcome == Outcome::failed);
		CHECK(c.take_output().empty());
	}
	SUBCASE("oversized packet from the milter") {
		m::Conversation c;
		c.take_output();
		CHECK(c.on_bytes(u32(50 * 1024 * 1024) + "O").outcome == Outcome::failed);
	}
	SUBCASE("a non-OPTNEG answer to OPTNEG") {
		m::Conversation c;
		c.take_output();
		CHECK(c.on_bytes(pkt('c')).outcome == Outcome::failed);
	}
	SUBCASE("macros the milter did not ask for are not sent") {
		m::Conversation c;
		c.take_output();
		REQUIRE(c.on_bytes(optneg_reply(6, 0, 0, u32(0) + std::string("j\0", 2))).outcome ==
		        Outcome::negotiated);
		c.queue_connect({"[192.0.2.1]", '4', 1, "192.0.2.1"}, {{"j", "mx"}, {"_", "x"}});
		std::string out = c.take_output();
		CHECK(out.find(std::string("j\0mx\0", 5)) != std::string::npos);
		CHECK(out.find(std::string("_\0x\0", 4)) == std::string::npos);
	}
}

TEST_CASE("milter messages: headers as milters see them") {
	std::string msg = "From: a@example.org\r\nSubject: one\r\n two\r\nX-Empty:\r\n\r\nbody\r\n";
	m::MessageParts parts = m::split_message(msg);
	REQUIRE(parts.headers.size() == 3);
	CHECK(parts.headers[0] == std::pair<std::string, std::string>{"From", "a@example.org"});
	CHECK(parts.headers[1].second == "one\n two");
	CHECK(parts.headers[2].second == "");
	CHECK(msg.substr(parts.body_offset) == "body\r\n");
}

TEST_CASE("milter messages: changes applied in order") {
	using K = m::Modification::Kind;
	std::string msg = "From: a@example.org\r\nSubject: one\r\nReceived: x\r\nReceived: y\r\n\r\nbody\r\n";
	SUBCASE("add, insert at the top, change and delete") {
		std::string out = m::apply_modifications(
		    msg,
		    {{K::add_header, "X-Spam", "no"},
		     {K::insert_header, "DKIM-Signature", "v=1; a=rsa-sha256;\n\tb=abc", 0},
		     {K::change_header, "received", "z", 2},
		     {K::change_header, "Subject", "", 1}});
		CHECK(out ==
		      "DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\nFrom: a@example.org\r\nReceived: x\r\n"
		      "Received: z\r\nX-Spam: no\r\n\r\nbody\r\n");
	}
	SUBCASE("a change of a field that is not there adds it") {
		CHECK(m::apply_modifications(msg, {{K::change_header, "X-New", "1", 1}}).find("X-New: 1\r\n\r\nbody") !=
		      std::string::npos);
	}
	SUBCASE("body replaced, bare LFs become CRLF") {
		CHECK(m::apply_modifications(msg, {{K::replace_body, "", "new\nbody\n"}}) ==
		      "From: a@example.org\r\nSubject: one\r\nReceived: x\r\nReceived: y\r\n\r\nnew\r\nbody\r\n");
	}
	SUBCASE("body replaced, bare CRs become CRLF too") {
		CHECK(m::apply_modifications(msg, {{K::replace_body, "", "a\rb\r\nc\r"}}) ==
		      "From: a@example.org\r\nSubject: one\r\nReceived: x\r\nReceived: y\r\n\r\na\r\nb\r\nc\r\n");
	}
	SUBCASE("quarantine and envelope changes leave the bytes alone") {
		std::vector<m::Modification> mods{{K::quarantine, "", "why"}, {K::add_rcpt, "<b@example.org>", ""}};
		CHECK_FALSE(m::changes_message(mods));
		CHECK(m::apply_modifications(msg, mods) == msg);
	}
}

TEST_CASE("milter replies: a milter's own reply code becomes code, enhanced code and text") {
	m::CustomReply r = m::parse_custom_reply("554 5.7.0 custom refusal", "7.1");
	CHECK(r.code == 554);
	CHECK(r.secode == "7.0");
	CHECK(r.text == "custom refusal");

	r = m::parse_custom_reply("451 try later", "7.1");
	CHECK(r.code == 451);
	CHECK(r.secode == "7.1");
	CHECK(r.text == "try later");

	r = m::parse_custom_reply("550-5.7.1 first line\r\n550 5.7.1 second line", "7.1");
	CHECK(r.code == 550);
	CHECK(r.secode == "7.1");
	CHECK(r.text == "first line\nsecond line");

	// An enhanced code of the wrong class is text, not a code.
	r = m::parse_custom_reply("550 4.7.1 odd", "7.1");
	CHECK(r.secode == "7.1");
	CHECK(r.text == "4.7.1 odd");

	// RFC 5321 4.2: reply text is tab and printable US-ASCII. A bare CR
	// would let a milter end the reply line early ("\r250 ok" reads as a
	// success to some clients); UTF-8 and escapes are no reply text either.
	r = m::parse_custom_reply("550 5.7.1 no\rway\x1b[2J\tcaf\xc3\xa9\x7f", "7.1");
	CHECK(r.code == 550);
	CHECK(r.text == "no?way?[2J\tcaf???");
}

TEST_CASE("milter messages: a line that is no field ends the header, as Postfix's cleanup has it") {
	using K = m::Modification::Kind;
	const std::string msg = "From: a@example.org\r\nnocolon\r\nSubject: s\r\n\r\nbody\r\n";
	// The milter sees the fields before the line, not an empty header.
	m::MessageParts parts = m::split_message(msg);
	REQUIRE(parts.headers.size() == 1);
	CHECK(parts.headers[0].first == "From");
	CHECK(msg.substr(parts.body_offset) == "nocolon\r\nSubject: s\r\n\r\nbody\r\n");
	// An added field goes with them; the rest stays as it came (no empty
	// line before it that would make the original fields body).
	CHECK(m::apply_modifications(msg, {{K::add_header, "X-Spam", "no"}}) ==
	      "From: a@example.org\r\nX-Spam: no\r\nnocolon\r\nSubject: s\r\n\r\nbody\r\n");
	// A new body replaces what followed the header.
	CHECK(m::apply_modifications(msg, {{K::replace_body, "", "new\n"}}) == "From: a@example.org\r\n\r\nnew\r\n");
	// Data without a header section stays body, after an empty line.
	CHECK(m::apply_modifications("just text\r\n", {{K::add_header, "X-Spam", "no"}}) ==
	      "X-Spam: no\r\n\r\njust text\r\n");
	CHECK(m::split_message("just text\r\n").headers.empty());
}

TEST_CASE("milter messages: a value's line breaks are folds, never new fields or an early body") {
	using K = m::Modification::Kind;
	const std::string msg = "From: a@example.org\r\n\r\nbody\r\n";
	CHECK(m::apply_modifications(msg, {{K::add_header, "X-Inj", "val\r\nBcc: evil@x\r\n\r\nbodyinj"}}) ==
	      "From: a@example.org\r\nX-Inj: val\r\n\tBcc: evil@x\r\n\t\r\n\tbodyinj\r\n\r\nbody\r\n");
	CHECK(m::apply_modifications(msg, {{K::add_header, "X-Cr", "a\rb\n"}}) ==
	      "From: a@example.org\r\nX-Cr: a\r\n\tb\r\n\r\nbody\r\n");
	// Folds the milter wrote stay as they are.
	CHECK(m::apply_modifications(msg, {{K::add_header, "X-Fold", "a\n\tb"}}) ==
	      "From: a@example.org\r\nX-Fold: a\r\n\tb\r\n\r\nbody\r\n");
}

TEST_CASE("milter conversation: a header change with a name that is no field name fails") {
	for (const std::string name : {"Bad: Name", "Bad Name", "Bad\r\nName"}) {
		CAPTURE(name);
		m::Conversation c = at_end_of_message(m::action::add_headers);
		CHECK(c.on_bytes(pkt('h', name + std::string("\0v\0", 3))).outcome == Outcome::failed);
	}
}

TEST_CASE("milter conversation: a new body over the message size limit fails, in one chunk or several") {
	for (const std::vector<std::string>& chunks :
	     {std::vector<std::string>{std::string(101, 'x')},
	      std::vector<std::string>{std::string(60, 'x'), std::string(41, 'y')}}) {
		m::Conversation c = at_end_of_message(m::action::change_body);
		c.limit_new_body(100);
		m::Step last;
		for (const std::string& chunk : chunks) last = c.on_bytes(pkt('b', chunk));
		CHECK(last.outcome == Outcome::failed);
	}
	m::Conversation c = at_end_of_message(m::action::change_body);
	c.limit_new_body(100);
	CHECK(c.on_bytes(pkt('b', std::string(100, 'x'))).outcome != Outcome::failed);
}
