// The LMTP client (net/lmtp_client.h) over a scripted wire: the test plays
// the LMTP server on the other end of a ScriptedStream, the loop and the
// worker pool that reads the message file are real. No socket, no Dovecot:
// partial and refused writes, a server that closes after some of its
// replies, and a reset in the middle of the body, each with the exact
// bytes the server sees and the result each recipient gets.
#include <doctest/doctest.h>
#include <ev.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "core/worker_pool.h"
#include "net/lmtp_client.h"
#include "session/harness.h"

using namespace tern;
using namespace tern::session_test;
using Status = smtp::LmtpRecipientResult::Status;

namespace {

const std::string prefix = "Return-Path: <bob@sender.example>\r\n";

// One delivery to alice and carol. The wire is seen from the client:
// `to_server` holds what the scripted LMTP server sent (the client reads
// it), `from_server` what the client wrote.
class LmtpScript {
public:
	explicit LmtpScript(const std::string& message) : loop_(ev_loop_new(EVFLAG_AUTO)) {
		std::string tmpl = (std::filesystem::temp_directory_path() / "tern-lmtp-XXXXXX").string();
		if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
		dir_ = tmpl;
		std::ofstream(dir_ + "/message", std::ios::binary) << message;
		pool_ = std::make_unique<core::WorkerPool>(loop_, 1, "lmtp-test");
		net::LmtpRequest request;
		request.target.ip = "127.0.0.1";  // only named in results: the stream is the script
		request.target.port = 24;
		request.transaction.lhlo_name = "mx.test.example";
		request.transaction.mail_from = "bob@sender.example";
		request.transaction.recipients = {"alice@test.example", "carol@test.example"};
		request.prefix = prefix;
		request.body_path = dir_ + "/message";
		request.timeout_s = 5;
		client_ = std::make_shared<net::LmtpClient>(
		    loop_, *pool_, std::move(request),
		    [this](std::vector<smtp::LmtpRecipientResult> r) { results_ = std::move(r); });
		client_->start_over(std::make_unique<ScriptedStream>(wire_));
	}
	~LmtpScript() {
		client_.reset();
		pool_.reset();
		ev_loop_destroy(loop_);
		std::error_code ec;
		std::filesystem::remove_all(dir_, ec);
	}
	LmtpScript(const LmtpScript&) = delete;
	LmtpScript& operator=(const LmtpScript&) = delete;

	Wire& wire() { return *wire_; }
	// The server's side: bytes it sends, and all the client wrote so far.
	void server_says(const std::string& bytes) { wire_->to_server += bytes; }
	const std::string& server_got() const { return got_; }
	const std::optional<std::vector<smtp::LmtpRecipientResult>>& results() const { return results_; }

	// Runs the client (its wanted I/O, the worker's file reads, its
	// deferred completion) until pred() holds or `seconds` passed.
	bool run_until(const std::function<bool()>& pred, double seconds = 5) {
		return run_loop_until(
		    loop_, pred, [this] { return pump(); }, seconds);
	}
	// Runs until the client has written `text` (and everything before it).
	bool until_sent(const std::string& text) {
		return run_until([&] { return got_.find(text) != std::string::npos; });
	}

	// A window of `room` bytes every other step and none in between: each
	// refused write must be retried with the same bytes.
	void throttle(size_t room, size_t max_write) {
		throttle_room_ = room;
		wire_->max_write = max_write;
	}

private:
	// One step: the events the client waits for, as far as the wire has them.
	bool pump() {
		bool moved = take_output();
		int wanted = client_->wanted_io();
		if (throttle_room_ > 0) wire_->write_room = (++steps_ % 2 == 0) ? throttle_room_ : 0;
		int revents = 0;
		if ((wanted & EV_READ) && (!wire_->to_server.empty() || wire_->client_closed || wire_->reset))
			revents |= EV_READ;
		// Writable even when the window is shut: the write must then be refused.
		if (wanted & EV_WRITE) revents |= EV_WRITE;
		if (revents == 0) return moved;
		client_->on_io(revents);
		take_output();
		return true;
	}
	bool take_output() {
		bool moved = !wire_->from_server.empty();
		got_ += wire_->from_server;
		wire_->from_server.clear();
		return moved;
	}

	struct ev_loop* loop_;
	std::string dir_;
	std::unique_ptr<core::WorkerPool> pool_;
	std::shared_ptr<Wire> wire_ = std::make_shared<Wire>();
	std::shared_ptr<net::LmtpClient> client_;
	std::optional<std::vector<smtp::LmtpRecipientResult>> results_;
	std::string got_;
	size_t throttle_room_ = 0;
	uint64_t steps_ = 0;
};

// The server's side of the dialogue up to DATA's 354 for both recipients.
void up_to_data(LmtpScript& s) {
	s.server_says("220 lmtp.test.example LMTP ready\r\n");
	REQUIRE(s.until_sent("LHLO mx.test.example\r\n"));
	s.server_says("250-lmtp.test.example\r\n250 PIPELINING\r\n");
	REQUIRE(s.until_sent("MAIL FROM:<bob@sender.example>\r\n"));
	s.server_says("250 2.1.0 ok\r\n");
	REQUIRE(s.until_sent("RCPT TO:<alice@test.example>\r\n"));
	s.server_says("250 2.1.5 ok\r\n");
	REQUIRE(s.until_sent("RCPT TO:<carol@test.example>\r\n"));
	s.server_says("250 2.1.5 ok\r\n");
	REQUIRE(s.until_sent("DATA\r\n"));
	s.server_says("354 go ahead\r\n");
}

// A body of `lines` lines, every 7th starting with a dot, over several of
// the client's 64 KiB file reads.
std::string long_body(size_t lines) {
	std::string body = "Subject: long\r\n\r\n";
	for (size_t i = 0; i < lines; ++i)
		body += (i % 7 == 0 ? "." : "") + std::string("line ") + std::to_string(i) + " of the body\r\n";
	return body;
}

// RFC 5321 4.5.2: a line that starts with a dot gets one more.
std::string dot_stuffed(const std::string& text) {
	std::string out;
	for (size_t pos = 0; pos < text.size();) {
		size_t eol = text.find("\r\n", pos);
		size_t end = eol == std::string::npos ? text.size() : eol + 2;
		if (text[pos] == '.') out += '.';
		out.append(text, pos, end - pos);
		pos = end;
	}
	return out;
}

}  // namespace

TEST_CASE("lmtp client: writes refused and cut short on the wire; the body arrives whole, each recipient its reply") {
	std::string message = long_body(8000);
	REQUIRE(message.size() > 2 * 64 * 1024);
	LmtpScript s(message);
	s.throttle(1500, 700);
	up_to_data(s);
	REQUIRE(s.until_sent("\r\n.\r\n"));
	// The server answers per recipient after the dot (RFC 2033 4.2).
	s.server_says("250 2.0.0 alice ok\r\n550 5.1.1 carol unknown\r\n");
	REQUIRE(s.run_until([&] { return s.results().has_value(); }));
	CHECK(s.wire().writes_refused > 0);
	const std::string& got = s.server_got();
	size_t body_at = got.find("DATA\r\n") + 6;
	INFO(got.substr(0, 300));
	std::string expected = prefix + dot_stuffed(message) + ".\r\n";
	CHECK(got.substr(body_at, expected.size()) == expected);
	// QUIT goes out only as far as the window takes it at once.
	CHECK(std::string("QUIT\r\n").starts_with(got.substr(body_at + expected.size())));
	const auto& r = *s.results();
	REQUIRE(r.size() == 2);
	CHECK(r[0].status == Status::delivered);
	CHECK(r[0].code == 250);
	CHECK(r[1].status == Status::permanent);
	CHECK(r[1].code == 550);
	CHECK(r[1].enhanced == "5.1.1");
}

TEST_CASE("lmtp client: a server that closes after one of two replies; the answered one stands, the other gets 451") {
	LmtpScript s("Subject: short\r\n\r\n.hidden dot\r\n");
	up_to_data(s);
	REQUIRE(s.until_sent("\r\n..hidden dot\r\n.\r\n"));
	s.server_says("250 2.0.0 alice ok\r\n");
	s.wire().client_closed = true;  // the server hangs up before carol's reply
	REQUIRE(s.run_until([&] { return s.results().has_value(); }));
	const auto& r = *s.results();
	REQUIRE(r.size() == 2);
	CHECK(r[0].status == Status::delivered);
	CHECK(r[1].status == Status::temporary);
	CHECK(r[1].code == 451);
	CHECK(r[1].enhanced == "4.3.0");
	CHECK(r[1].local);
}

TEST_CASE("lmtp client: a reset in the middle of the body; nobody is delivered, both get 451 4.3.0") {
	LmtpScript s(long_body(8000));
	s.throttle(4000, 4000);
	up_to_data(s);
	// Some of the body is out, not all of it.
	REQUIRE(s.run_until([&] { return s.server_got().size() > s.server_got().find("DATA\r\n") + 20000; }));
	CHECK(s.server_got().find("\r\n.\r\n") == std::string::npos);
	s.wire().reset = true;
	REQUIRE(s.run_until([&] { return s.results().has_value(); }));
	const auto& r = *s.results();
	REQUIRE(r.size() == 2);
	for (const auto& one : r) {
		CHECK(one.status == Status::temporary);
		CHECK(one.code == 451);
		CHECK(one.enhanced == "4.3.0");
		CHECK(one.local);
	}
}
