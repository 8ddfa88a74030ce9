// Trust batteries that keep two promises true:
//  * tern is not an open relay: classic relay tricks on port 25 and on
//    submission without AUTH never get a message to the smarthost or into
//    the queue (RFC 5321 3.6.1, 3.6.2 source routes; RFC 2505 on relaying);
//  * a 250 after DATA survives SIGKILL: several clients deliver while the
//    daemon is killed and restarted; every acknowledged message is in the
//    Maildir, whole, once.
#include "bb.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "helpers/smtp_sink.h"
#include "helpers/tls_tools.h"

namespace {

struct RelayTrick {
	std::string name;
	std::string mail_from;  // the whole MAIL FROM argument, with <>
	std::string rcpt_to;    // the whole RCPT TO argument, with <>
};

// Each names the trick; the local domain is test.example, the server calls
// itself mx.test.example, remote.example is somebody else's.
std::vector<RelayTrick> relay_tricks() {
	const std::string bob = "<bob@sender.example>";
	return {
	    {"plain remote recipient", bob, "<carol@remote.example>"},
	    {"upper-case remote domain", bob, "<carol@REMOTE.EXAMPLE>"},
	    {"remote domain with trailing dot", bob, "<carol@remote.example.>"},
	    {"source route via the local domain", bob, "<@test.example:carol@remote.example>"},
	    {"source route via two hops", bob, "<@test.example,@mx.test.example:carol@remote.example>"},
	    {"source route via an IP literal", bob, "<@[127.0.0.1]:carol@remote.example>"},
	    {"percent hack", bob, "<carol%remote.example@test.example>"},
	    {"percent hack, upper-case local domain", bob, "<carol%remote.example@TEST.EXAMPLE>"},
	    {"percent hack on an IP literal", bob, "<carol%remote.example@[127.0.0.1]>"},
	    {"double percent hack", bob, "<carol%remote.example%test.example@test.example>"},
	    {"bang path at the local domain", bob, "<remote.example!carol@test.example>"},
	    {"bare bang path", bob, "<remote.example!carol>"},
	    {"quoted remote address at the local domain", bob, "<\"carol@remote.example\"@test.example>"},
	    {"quoted percent hack", bob, "<\"carol%remote.example\"@test.example>"},
	    {"quoted remote address alone", bob, "<\"carol@remote.example\">"},
	    {"two at signs", bob, "<carol@remote.example@test.example>"},
	    {"local domain then remote", bob, "<carol@test.example@remote.example>"},
	    {"local domain as a subdomain of remote", bob, "<carol@test.example.remote.example>"},
	    {"IPv4 literal of the server", bob, "<carol@[127.0.0.1]>"},
	    {"IPv4 literal elsewhere", bob, "<carol@[192.0.2.1]>"},
	    {"IPv6 literal loopback", bob, "<carol@[IPv6:::1]>"},
	    {"IPv6 literal, long form", bob, "<carol@[IPv6:0:0:0:0:0:0:0:1]>"},
	    {"IPv4-mapped IPv6 literal", bob, "<carol@[IPv6:::ffff:127.0.0.1]>"},
	    {"server host name", bob, "<carol@mx.test.example>"},
	    {"localhost", bob, "<carol@localhost>"},
	    {"IDNA A-label remote domain", bob, "<carol@xn--bcher-kva.example>"},
	    {"UTF-8 remote domain", bob + " SMTPUTF8", "<carol@bücher.example>"},
	    {"UTF-8 lookalike of the local domain", bob + " SMTPUTF8", "<carol@tеst.example>"},
	    {"fullwidth dot in the local domain", bob + " SMTPUTF8",
	     "<carol@test\xef\xbc\x8e"
	     "example>"},
	    {"remote postmaster", bob, "<postmaster@remote.example>"},
	    {"postmaster percent hack", bob, "<postmaster%remote.example@test.example>"},
	    {"null sender to remote", "<>", "<carol@remote.example>"},
	    {"local sender to remote", "<alice@test.example>", "<carol@remote.example>"},
	    {"local postmaster sender to remote", "<postmaster@test.example>", "<carol@remote.example>"},
	    {"remote recipient with DSN parameters", bob, "<carol@remote.example> NOTIFY=NEVER"},
	    {"remote recipient with ORCPT naming a local one", bob,
	     "<carol@remote.example> ORCPT=rfc822;alice@test.example"},
	    {"local user with trailing dot on the local domain", bob, "<alice@test.example.>"},
	    {"case variant of a local address", bob, "<ALICE@Test.Example>"},
	    {"quoted local part of a local address", bob, "<\"alice\"@test.example>"},
	    {"local postmaster, no domain", bob, "<postmaster>"},
	};
}

std::string queue_patch(const TernDaemon& d, const SmtpSink& sink) {
	return R"({"listeners": {"test": {"submission": {"require_starttls": false}}},
		"pid_file": ")" +
	    d.dir() + R"(/ternd.pid",
		"queue": {"smarthost": "127.0.0.1:)" +
	    std::to_string(sink.port()) + R"(", "smarthost_tls": "none",
		          "retry_base_s": 1, "max_attempts": 2}})";
}

// Files under dir, recursively (the queue's message files).
size_t files_under(const std::string& dir) {
	RunResult r = run_command({"/usr/bin/find", dir, "-type", "f"});
	size_t n = 0;
	for (char ch : r.output)
		if (ch == '\n') n++;
	return r.exit_code == 0 ? n : 0;
}

// All Maildir files of a Maildir (new/ and cur/).
std::vector<std::string> maildir_messages(const std::string& maildir) {
	std::vector<std::string> all = maildir_files(maildir, "new");
	for (auto& f : maildir_files(maildir, "cur")) all.push_back(f);
	return all;
}

}  // namespace

TEST_CASE("trust relay: classic open-relay tricks on port 25 and unauthenticated submission relay nothing") {
	SmtpSink sink;
	DaemonOptions o;
	o.submission = true;
	o.start = false;
	TernDaemon d(o);
	d.write_config(queue_patch(d, sink));
	const std::string alice_password = "relay control 7";
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", alice_password, &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());
	REQUIRE_RUNNING(d);

	int attempts = 0, rcpt_accepted = 0, data_accepted = 0;
	std::vector<std::string> accepted_tokens;
	for (int port : {d.smtp_port(), d.submission_port()}) {
		SmtpClient c;
		REQUIRE(c.connect("127.0.0.1", port));
		REQUIRE(c.greet_and_ehlo("client.sender.example"));
		for (const RelayTrick& trick : relay_tricks()) {
			attempts++;
			std::string token = "relay-token-" + std::to_string(attempts);
			CAPTURE(port);
			CAPTURE(trick.name);
			REQUIRE(c.cmd("RSET").code == 250);
			Reply mail = c.cmd("MAIL FROM:" + trick.mail_from);
			if (mail.code != 250) continue;
			Reply rcpt = c.cmd("RCPT TO:" + trick.rcpt_to);
			REQUIRE(rcpt.code != 0);  // an answer, not a hang or a close
			if (rcpt.code / 100 != 2) continue;
			rcpt_accepted++;
			// Accepted: it may only be for a local mailbox. Send it, so that
			// a relayed copy would show up at the sink.
			if (c.cmd("DATA").code != 354) continue;
			Reply end = c.cmd(dot_stuff(make_message(token, token + "\r\n")) + ".");
			if (end.code == 250) {
				data_accepted++;
				accepted_tokens.push_back(token);
				MESSAGE("accepted (must be local): " << trick.name << " " << trick.rcpt_to);
			}
		}
		c.cmd("QUIT");
	}
	REQUIRE(d.running());
	// Long enough for the queue to have tried the smarthost (first attempt
	// is immediate).
	std::this_thread::sleep_for(std::chrono::milliseconds(1500));

	size_t relayed = sink.messages().size();
	size_t queued = files_under(d.data_dir() + "/queue");
	MESSAGE("relay attempts=" << attempts << " relayed=" << relayed << " queued=" << queued
	                          << " accepted_locally=" << data_accepted);
	CHECK(attempts >= 60);
	CHECK(relayed == 0);
	CHECK(sink.connections() == 0);
	CHECK(queued == 0);
	// What was accepted went to the local mailbox (alice, also postmaster).
	auto files = maildir_messages(d.maildir());
	CHECK(files.size() == accepted_tokens.size());
	for (const std::string& token : accepted_tokens) {
		int found = 0;
		for (const auto& f : files)
			if (contains(read_file(f), token + "\r\n")) found++;
		CHECK_MESSAGE(found == 1, token);
	}

	// The control: the same daemon does relay for a logged-in user, and
	// that message does reach the sink, so the zero above is meaningful.
	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", d.submission_port()));
	REQUIRE(c.greet_and_ehlo("client.test.example"));
	REQUIRE(c.cmd("AUTH PLAIN " + plain_response("alice@test.example", alice_password)).code == 235);
	Transaction t = send_mail(
	    c, "alice@test.example", {"carol@remote.example"},
	    make_message("control", "relayed on purpose\r\n", "alice@test.example", "carol@remote.example"));
	REQUIRE(t.reply.code == 250);
	CHECK(sink.wait_for_messages(1, 10000));
	CHECK(sink.messages().size() == 1);
}

TEST_CASE("trust relay: SIGKILL under load loses no acknowledged message and leaves no partial one") {
	TernDaemon d;
	REQUIRE_RUNNING(d);
	const int clients = 4;
	const int kills = 8;
	std::atomic<bool> stop{false};
	std::mutex mutex;
	std::vector<std::string> acknowledged;  // tokens that got a 250
	std::atomic<int> attempts{0};

	auto deliver_loop = [&](int client) {
		std::mt19937 rng(static_cast<unsigned>(client * 7919 + 1));
		int sequence = 0;
		while (!stop) {
			SmtpClient c;
			c.timeout_ms = 3000;
			if (!c.connect("127.0.0.1", d.smtp_port()) || !c.greet_and_ehlo()) {
				std::this_thread::sleep_for(std::chrono::milliseconds(20));
				continue;
			}
			while (!stop) {
				std::string token = "kill-" + std::to_string(client) + "-" + std::to_string(++sequence);
				// 4 to 80 KB, so that kills land in every phase of DATA.
				size_t lines = 50 + rng() % 1000;
				std::string body;
				for (size_t i = 0; i < lines; i++)
					body += token + " line " + std::to_string(i) + " of a message under load\r\n";
				body += "END-" + token + "\r\n";
				attempts++;
				Transaction t = send_mail(c, test_sender, {"alice@test.example"},
				                          make_message(token, body));
				if (t.step == "END" && t.reply.code == 250) {
					std::lock_guard<std::mutex> lock(mutex);
					acknowledged.push_back(token);
				} else {
					break;  // killed (or refused): reconnect
				}
			}
		}
	};
	std::vector<std::thread> threads;
	for (int i = 0; i < clients; i++) threads.emplace_back(deliver_loop, i);

	std::mt19937 rng(12345);
	int done_kills = 0;
	for (int k = 0; k < kills; k++) {
		std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 500));
		d.kill9();
		done_kills++;
		if (!d.start()) {
			stop = true;
			for (auto& t : threads) t.join();
			FAIL("restart after kill " << k << " failed: " << d.error() << "\n" << log_tail(d));
		}
	}
	std::this_thread::sleep_for(std::chrono::milliseconds(500));
	stop = true;
	for (auto& t : threads) t.join();
	REQUIRE(d.stop() == 0);

	// Every file in new/ and cur/: which token, and is it whole?
	std::map<std::string, int> present;
	int partial = 0;
	for (const std::string& file : maildir_messages(d.maildir())) {
		std::string text = read_file(file);
		size_t at = text.find("Subject: kill-");
		if (at == std::string::npos) {
			partial++;
			continue;
		}
		size_t start = at + 9;
		std::string token = text.substr(start, text.find("\r\n", start) - start);
		present[token]++;
		if (!ends_with(text, "END-" + token + "\r\n")) partial++;
	}
	int lost = 0, duplicated = 0;
	for (const std::string& token : acknowledged)
		if (present.count(token) == 0) {
			lost++;
			MESSAGE("lost: " << token);
		}
	for (const auto& [token, n] : present)
		if (n > 1) duplicated += n - 1;
	MESSAGE("kills=" << done_kills << " attempts=" << attempts.load() << " acknowledged=" << acknowledged.size()
	                 << " present=" << present.size() << " lost=" << lost << " duplicated=" << duplicated
	                 << " partial=" << partial);
	CHECK(done_kills == kills);
	CHECK(acknowledged.size() > 0);
	CHECK(lost == 0);
	CHECK(duplicated == 0);
	CHECK(partial == 0);
}
