// Fuzzes one whole SMTP session (server::Connection with a real Server,
// config, store and worker pool) over the scripted wire of the session tier
// (tests/session/harness.h): no sockets. Unlike the other targets it uses a
// temp data dir and the loop's clock, so a saved input replays the same
// dialogue but worker timing may differ.
//
// The input is a program for the client: each op byte picks one step,
//   0: send the next n bytes (n = the following byte, at most what is left)
//   1: let the session run (no waiting)
//   2: set the wire's window from the next byte (0: full, 255: unlimited,
//      else that many bytes) and its longest write (byte % 16 + 1)
//   3: half-close (the client sends nothing more)
// The first byte picks the service (smtp or submission). The account
// alice@test.example has the password "fuzz".
// Checks:
//  - once the client has closed and the wire is open, the session ends in
//    bounded time (no hang, whatever state it was left in);
//  - everything it wrote is whole reply lines: three digits from 2xx to 5xx,
//    then a space or a hyphen, each ending in CRLF;
//  - no crash, no sanitizer report.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

#include "fuzz/fuzz_common.h"
#include "sasl/secrets.h"
#include "session/harness.h"

using namespace tern;
using namespace tern::session_test;

namespace {

SessionHarness& harness() {
	// One server for the whole run (the store and the worker pool are slow
	// to set up); each input gets a new session on it. Limits are raised so
	// that many sessions from one address are not refused. It is never
	// destroyed (libFuzzer does not return), so its data directory stays:
	// replay.sh and run.sh give the run a TMPDIR of its own and remove it.
	static SessionHarness* h = [] {
		HarnessOptions o;
		o.connect = false;
		o.config_patch = R"({"limits": {"connection_rate_per_min": [100000000, 100000000, 100000000],
		                                "connections": [1000, 1000, 1000],
		                                "auth_failures_per_min": [100000000, 100000000, 100000000],
		                                "auth_failures_per_day": [100000000, 100000000, 100000000]},
		                     "listeners": {"test": {"submission": {"require_starttls": false}}},
		                     "timeouts_s": {"command": 1, "data_chunk": 1, "data_total": 2}})";
		auto* created = new SessionHarness(o);
		// alice@test.example logs in with "fuzz" (the seeds and the
		// dictionary carry it), so authenticated submission is reached too.
		created->env().set_password_secrets("alice", sasl::StoredSecrets::derive("fuzz").serialize());
		return created;
	}();
	return *h;
}

bool whole_reply_lines(std::string_view out) {
	size_t start = 0;
	while (start < out.size()) {
		size_t eol = out.find("\r\n", start);
		if (eol == std::string_view::npos || eol - start < 3) return false;
		std::string_view line = out.substr(start, eol - start);
		if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9')
			return false;
		if (line.size() > 3 && line[3] != ' ' && line[3] != '-') return false;
		start = eol + 2;
	}
	return true;
}

void run_program(SessionHarness& h, std::string_view program) {
	size_t pos = 0;
	auto next_byte = [&]() -> uint8_t { return pos < program.size() ? static_cast<uint8_t>(program[pos++]) : 0; };
	auto no_wait = [] { return false; };
	while (pos < program.size() && h.session_open()) {
		switch (next_byte() % 4) {
		case 0: {
			size_t n = std::min<size_t>(next_byte(), program.size() - pos);
			h.send(program.substr(pos, n));
			pos += n;
			break;
		}
		case 1: h.run_until(no_wait, 0); break;
		case 2: {
			uint8_t room = next_byte();
			h.wire().write_room = room == 255 ? std::numeric_limits<size_t>::max() : room;
			h.wire().max_write = next_byte() % 16 + 1;
			break;
		}
		case 3: h.close_client(); break;
		}
	}
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
	SessionHarness& h = harness();
	std::string_view input(reinterpret_cast<const char*>(data), size);
	h.reconnect(!input.empty() && (input[0] & 1) ? net::Service::submission : net::Service::smtp);
	if (!input.empty()) input.remove_prefix(1);
	run_program(h, input);
	h.close_client();
	h.wire().write_room = std::numeric_limits<size_t>::max();
	h.wire().max_write = std::numeric_limits<size_t>::max();
	// The longest wait of a closing session is its data deadline (1 s).
	bool ended = h.run_until([&] { return !h.session_open(); }, 5);
	// TERN_FUZZ_SHOW=1 prints what the session answered (to check a new seed).
	if (const char* show = std::getenv("TERN_FUZZ_SHOW"); show && *show == '1')
		std::fprintf(stderr, "%s", h.received().c_str());
	FUZZ_CHECK(ended);
	FUZZ_CHECK(whole_reply_lines(h.received()));
	return 0;
}
