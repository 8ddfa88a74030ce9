// Fuzzes the MTA side of the milter protocol (milter/protocol.h) with what
// a milter may send: the input is the milter's byte stream, fed in pieces
// whose sizes come from the input itself. The conversation goes through
// negotiation, CONNECT, MAIL, RCPT, the message and its end, queueing each
// stage when the previous one ends. Invariants: a negotiation never grants
// more than was offered; once failed, the conversation stays failed and
// writes nothing; changes come only from the end of the message, and
// applying them to a message never crashes (and changes nothing when
// changes_message says so).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "milter/protocol.h"
#include "milter/rewrite.h"

using namespace tern;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	std::string_view input(reinterpret_cast<const char*>(data), size);
	milter::Conversation c;
	c.take_output();
	int stage = 0;  // 0 negotiation, 1 connect, 2 mail, 3 rcpt, 4 message, 5 end, 6 over
	bool failed = false;
	auto next_stage = [&] {
		switch (++stage) {
		case 1:
			c.queue_connect({"[192.0.2.1]", '4', 25, "192.0.2.1"},
			                {{"j", "mx.example"}, {"{client_addr}", "192.0.2.1"}});
			break;
		case 2: c.queue_mail({"<a@example.org>", "BODY=8BITMIME"}, {{"{mail_addr}", "a@example.org"}}); break;
		case 3: c.queue_rcpt({"<b@example.net>"}, {{"{rcpt_addr}", "b@example.net"}}); break;
		case 4:
			c.queue_message_start({{"From", "a@example.org"}, {"Subject", "x\n y"}}, {{"i", "id"}});
			c.queue_body("body line\r\n");
			c.queue_end_of_message({{"i", "id"}});
			break;
		default: break;
		}
	};
	size_t pos = 0;
	while (pos < input.size() && !failed) {
		// Piece size from the next byte: 1..64 bytes.
		size_t piece = 1 + static_cast<unsigned char>(input[pos]) % 64;
		++pos;
		std::string_view bytes = input.substr(pos, piece);
		pos += bytes.size();
		milter::Step s = c.on_bytes(bytes);
		while (s.outcome != milter::Outcome::pending) {
			if (s.outcome == milter::Outcome::failed) {
				failed = true;
				FUZZ_CHECK(!s.error.empty());
				break;
			}
			if (s.outcome == milter::Outcome::negotiated) {
				FUZZ_CHECK((c.negotiation().actions & ~milter::offered_actions) == 0);
				FUZZ_CHECK((c.negotiation().flags & ~milter::offered_flags) == 0);
			}
			if (!c.modifications().empty()) FUZZ_CHECK(stage == 4);
			if (s.outcome == milter::Outcome::reject) FUZZ_CHECK(s.reply.empty() || s.reply[0] == '5');
			if (s.outcome == milter::Outcome::tempfail) FUZZ_CHECK(s.reply.empty() || s.reply[0] == '4');
			if (stage == 4 && s.outcome != milter::Outcome::next) {
				std::string message = "From: a@example.org\r\nSubject: x\r\n y\r\n\r\nbody line\r\n";
				std::string changed = milter::apply_modifications(message, c.modifications());
				if (!milter::changes_message(c.modifications())) FUZZ_CHECK(changed == message);
				milter::split_message(changed);
			}
			if (!s.reply.empty()) milter::parse_custom_reply(s.reply, "7.1");
			c.take_output();
			if (c.idle()) next_stage();
			c.take_output();
			s = c.on_bytes({});
		}
	}
	if (failed) {
		FUZZ_CHECK(c.take_output().empty());
		FUZZ_CHECK(c.on_bytes("x").outcome == milter::Outcome::failed);
	}
	return 0;
}
