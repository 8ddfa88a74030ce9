// The outbound queue in-process (src/queue): a real ev_loop run by the test
// thread, a WorkerPool, a Berkeley DB environment in a temp data dir, the
// SMTP sink as the remote server and, for MX delivery, the loopback DNS
// server with the udns resolver.
#include <algorithm>
#include <doctest/doctest.h>

#include <ev.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/watchers.h"
#include "core/worker_pool.h"
#include "helpers/daemon.h"
#include "helpers/dir_entries.h"
#include "helpers/dns_server.h"
#include "helpers/smtp_client.h"
#include "helpers/smtp_sink.h"
#include "helpers/tls_tools.h"
#include "mailauth/resolver.h"
#include "net/udns_resolver.h"
#include "queue/ctl.h"
#include "queue/queue.h"
#include "store/db.h"
#include "util/log.h"

using namespace tern;
using tern::testing::DnsServer;
using tern::testing::listening_port;
using tern::testing::now_ms;
using tern::testing::SmtpSink;
using tern::testing::take_tcp_port;

namespace {

std::string make_temp_dir() {
	char tmpl[] = "/tmp/tern-queue-test-XXXXXX";
	REQUIRE(mkdtemp(tmpl) != nullptr);
	return tmpl;
}

void remove_tree(const std::string& path) {
	std::string cmd = "rm -rf '" + path + "'";
	(void)!system(cmd.c_str());
}

std::string read_file(const std::string& path) {
	std::ifstream f(path, std::ios::binary);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

std::string config_text(const std::string& data_dir, const std::string& smarthost, int max_attempts, int retry_base_s) {
	std::string sh = smarthost.empty() ? "null" : "\"" + smarthost + "\"";
	return R"({
		"hostname": "mail.test.example",
		"data_dir": ")" +
	    data_dir + R"(",
		"domains": {"test.example": {}},
		"accounts": {
			"alice": {"domain": "test.example", "destinations": {"alice@test.example": {"mailbox": "INBOX"}}},
			"bob": {"domain": "test.example", "destinations": {"bob@test.example": {"mailbox": "INBOX"}}}
		},
		"postmaster": {"account": "alice"},
		"queue": {"smarthost": )" +
	    sh + R"(, "smarthost_tls": "opportunistic", "retry_base_s": )" + std::to_string(retry_base_s) +
	    R"(, "max_attempts": )" + std::to_string(max_attempts) + R"(, "max_concurrent": 10}
	})";
}

// One queue with everything it needs, in a fresh data dir.
struct Fixture {
	std::string dir;
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	std::shared_ptr<const config::Config> config;
	std::unique_ptr<core::WorkerPool> pool;
	std::unique_ptr<store::Env> env;
	mailauth::CannedResolver canned;
	std::unique_ptr<net::UdnsResolver> udns;
	std::unique_ptr<queue::Queue> queue;

	struct Settings {
		const DnsServer* dns = nullptr;
		int mx_port = 25;
		int max_attempts = 8;
		int delayed_dsn_after = 5;
		int retry_base_s = 1;
		std::string reuse_dir;  // a data dir left by an earlier fixture ("restart")
		int mta_sts_port = 443;
		std::string system_ca_file;     // "" = the queue's default
		double greeting_timeout_s = 0;  // 0 = the queue's default (RFC 5321 4.5.3.2.1)
	};
	explicit Fixture(const std::string& smarthost) : Fixture(smarthost, Settings{}) {}
	Fixture(const std::string& smarthost, const Settings& s) {
		// The queue logs each delivery at info; keep the test output readable
		// (TERN_QUEUE_TEST_LOG=1 shows everything).
		log::set_level(getenv("TERN_QUEUE_TEST_LOG") ? log::Level::trace : log::Level::error);
		dir = s.reuse_dir.empty() ? make_temp_dir() : s.reuse_dir;
		const DnsServer* dns = s.dns;
		config = config::Config::load_text(config_text(dir, smarthost, s.max_attempts, s.retry_base_s),
		                                   dir + "/tern.json", dir);
		pool = std::make_unique<core::WorkerPool>(loop, 2);
		env = std::make_unique<store::Env>(dir);
		mkdir((dir + "/tmp").c_str(), 0700);
		queue::QueueOptions options;
		options.mx_port = s.mx_port;
		options.delayed_dsn_after = s.delayed_dsn_after;
		options.mta_sts_port = s.mta_sts_port;
		if (!s.system_ca_file.empty()) options.system_ca_file = s.system_ca_file;
		if (s.greeting_timeout_s > 0) options.timeouts.greeting = s.greeting_timeout_s;
		mailauth::Resolver* resolver = &canned;
		if (dns) {
			udns = std::make_unique<net::UdnsResolver>(loop, std::vector<std::string>{dns->address()},
			                                           2000);
			resolver = udns.get();
		}
		queue = std::make_unique<queue::Queue>(loop, *pool, *resolver, *env, config, options);
		queue->start();
	}
	~Fixture() {
		close();
		if (!keep_dir) remove_tree(dir);
	}
	bool keep_dir = false;
	void close() {
		if (!loop) return;
		// As ternd stops: the queue's pending completions run against a
		// queue that is shut down, not one that is gone.
		queue->shutdown();
		pool->drain();
		queue.reset();
		pool.reset();
		udns.reset();
		env.reset();
		ev_loop_destroy(loop);
		loop = nullptr;
	}

	// Runs the loop until pred() holds or timeout_s passed.
	bool run_until(const std::function<bool()>& pred, double timeout_s = 10) {
		core::TimerWatcher tick(loop, [] {});
		auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(int(timeout_s * 1000));
		while (!pred()) {
			if (std::chrono::steady_clock::now() > deadline) return false;
			tick.start(0.02);
			ev_run(loop, EVRUN_ONCE);
		}
		return true;
	}

	// A recipient's own prefix instead of enqueue's `prefix` (the
	// session writes one per recipient, e.g. a Received "for" clause).
	std::map<std::string, std::string> recipient_prefix;

	// Writes `body` as a session would (data_dir/tmp) and enqueues it;
	// returns the done() error.
	std::string enqueue(const std::string& from, const std::vector<std::string>& to, const std::string& body,
	                    const std::string& prefix = "", const std::function<void()>& at_done = {},
	                    const std::string& dsn_utf8 = "", bool has_8bit = false, bool smtputf8 = false) {
		static int counter = 0;
		std::string path = dir + "/tmp/msg" + std::to_string(++counter);
		{
			std::ofstream f(path, std::ios::binary);
			f << body;
		}
		server::OutboundMessage m;
		m.sender_account = "alice";
		m.from = from;
		m.message_id = "test" + std::to_string(counter) + "@test.example";
		m.message_path = path;
		m.message_size = static_cast<int64_t>(body.size());
		m.record_outgoing = !from.empty();
		m.dsn_utf8 = dsn_utf8;
		m.has_8bit = has_8bit;
		m.smtputf8 = smtputf8;
		if (from.empty()) m.sender_account = "";
		for (auto& t : to) {
			server::OutboundRecipient r;
			r.to = t;
			r.domain = t.substr(t.rfind('@') + 1);
			auto own = recipient_prefix.find(t);
			r.prefix = own != recipient_prefix.end() ? own->second : prefix;
			m.recipients.push_back(r);
		}
		bool finished = false;
		std::string error = "not done";
		queue->enqueue(std::move(m), [&](std::string e) {
			error = e;
			finished = true;
			if (at_done) at_done();
		});
		REQUIRE(run_until([&] { return finished; }));
		return error;
	}

	std::vector<std::string> maildir_new(const std::string& account) {
		return tern::testing::dir_entries(dir + "/accounts/" + account + "/Maildir/new");
	}
	std::string maildir_message(const std::string& account, size_t i = 0) {
		auto names = maildir_new(account);
		REQUIRE(names.size() > i);
		return read_file(dir + "/accounts/" + account + "/Maildir/new/" + names[i]);
	}
};

const std::string test_body =
    "From: alice@test.example\r\n"
    "To: carol@remote.example\r\n"
    "Subject: queue test\r\n"
    "Message-Id: <m1@test.example>\r\n"
    "\r\n"
    "first line\r\n"
    ".a line starting with a dot\r\n"
    "..two dots\r\n"
    ".\r\n"
    "last line\r\n";

}  // namespace

TEST_CASE("queue: enqueue is durable before done, then delivery via smarthost") {
	SmtpSink sink;
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()));
	REQUIRE(fx.run_until([&] { return true; }));
	size_t records_at_done = 0, files_at_done = 0;
	std::string prefix = "Received: from test by mail.test.example\r\n";
	std::string err = fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body, prefix, [&] {
		records_at_done = fx.env->queue_list().size();
		files_at_done = tern::testing::dir_entries(fx.dir + "/queue").size();
	});
	CHECK(err == "");
	CHECK(records_at_done == 1);
	CHECK(files_at_done == 1);
	REQUIRE(fx.run_until(
	    [&] { return sink.messages().size() == 1 && fx.queue->size() == 0 && fx.queue->active() == 0; }));
	auto msgs = sink.messages();
	CHECK(msgs[0].helo == "mail.test.example");
	CHECK(msgs[0].mail_from == "alice@test.example");
	CHECK(msgs[0].rcpt_to == std::vector<std::string>{"carol@remote.example"});
	// Headers intact, dot lines survive the stuffing.
	CHECK(msgs[0].data == prefix + test_body);
	CHECK(fx.env->queue_list().empty());
	CHECK(tern::testing::dir_entries(fx.dir + "/queue").empty());
	CHECK(fx.queue->counters().delivered == 1);
}

TEST_CASE("queue: several recipients of one domain share one transaction") {
	SmtpSink sink;
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()));
	CHECK(fx.enqueue("alice@test.example", {"c1@remote.example", "c2@remote.example"}, test_body) == "");
	CHECK(tern::testing::dir_entries(fx.dir + "/queue").size() <= 2);
	REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
	auto msgs = sink.messages();
	REQUIRE(msgs.size() == 1);
	CHECK(msgs[0].rcpt_to == std::vector<std::string>{"c1@remote.example", "c2@remote.example"});
	CHECK(tern::testing::dir_entries(fx.dir + "/queue").empty());
}

TEST_CASE("queue: recipients of one message with different prefixes get a transaction each, with their prefix") {
	SmtpSink sink;
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()));
	const std::string common = "Received: from test by mail.test.example\r\n";
	fx.recipient_prefix["c2@remote.example"] = "Received: from test by mail.test.example for c2\r\n";
	CHECK(fx.enqueue("alice@test.example", {"c1@remote.example", "c2@remote.example", "c3@remote.example"},
	                 test_body, common) == "");
	REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
	std::map<std::string, std::string> data_by_rcpts;
	for (const auto& m : sink.messages()) {
		std::string rcpts;
		for (const auto& r : m.rcpt_to) rcpts += (rcpts.empty() ? "" : ",") + r;
		data_by_rcpts[rcpts] = m.data;
	}
	REQUIRE(data_by_rcpts.size() == 2);
	CHECK(data_by_rcpts["c1@remote.example,c3@remote.example"] == common + test_body);
	CHECK(data_by_rcpts["c2@remote.example"] == fx.recipient_prefix["c2@remote.example"] + test_body);
}

TEST_CASE("queue: a next hop's LIMITS RCPTMAX splits the recipients over transactions (RFC 9422)") {
	SmtpSink::Options o;
	o.limits = "RCPTMAX=2 MAILMAX=100";
	SmtpSink sink(o);
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()));
	std::vector<std::string> rcpts{"c1@remote.example", "c2@remote.example", "c3@remote.example",
	                               "c4@remote.example", "c5@remote.example"};
	CHECK(fx.enqueue("alice@test.example", rcpts, test_body) == "");
	REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
	auto msgs = sink.messages();
	REQUIRE(msgs.size() == 3);
	std::vector<std::string> got;
	for (const auto& m : msgs) {
		CHECK(m.rcpt_to.size() <= 2);
		CHECK(m.data == test_body);
		got.insert(got.end(), m.rcpt_to.begin(), m.rcpt_to.end());
	}
	std::sort(got.begin(), got.end());
	CHECK(got == rcpts);
	// Held back is not an attempt: nothing was retried or failed.
	CHECK(fx.queue->counters().delivered == 5);
	CHECK(fx.queue->counters().retried == 0);
	CHECK(fx.queue->counters().failed == 0);
	CHECK(fx.maildir_new("alice").empty());
}

TEST_CASE("queue: 4xx is retried after the backoff and then delivered") {
	SmtpSink sink;
	SmtpSink::Replies replies;
	replies.rcpt = "451 4.3.0 try again later";
	sink.set_replies(replies);
	Fixture::Settings settings;
	settings.retry_base_s = 450;
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()), settings);
	CHECK(fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
	REQUIRE(fx.run_until([&] { return fx.queue->counters().retried == 1 && fx.queue->active() == 0; }));
	auto records = fx.env->queue_list();
	REQUIRE(records.size() == 1);
	CHECK(records[0].attempts == 1);
	CHECK(records[0].last_error == "451 4.3.0 try again later");
	// The model's schedule: 7.5 min ± 5 s after the first attempt.
	CHECK(records[0].next_attempt - records[0].last_attempt >= 445);
	CHECK(records[0].next_attempt - records[0].last_attempt <= 455);
	CHECK(sink.messages().empty());
	sink.set_replies(SmtpSink::Replies{});
	fx.queue->kick(records[0].id);
	REQUIRE(fx.run_until([&] { return sink.messages().size() == 1 && fx.queue->size() == 0; }, 10));
	CHECK(fx.queue->counters().delivered == 1);
	CHECK(fx.env->queue_list().empty());
	CHECK(fx.maildir_new("alice").empty());  // no DSN for a temporary failure
}

TEST_CASE("queue: 5xx gives a failed DSN in the sender's INBOX") {
	SmtpSink sink;
	SmtpSink::Replies replies;
	replies.rcpt = "550 5.1.1 no such user here";
	sink.set_replies(replies);
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()));
	CHECK(fx.enqueue("alice@test.example", {"nobody@remote.example"}, test_body) == "");
	REQUIRE(fx.run_until(
	    [&] { return fx.queue->size() == 0 && fx.queue->active() == 0 && !fx.maildir_new("alice").empty(); }));
	CHECK(sink.messages().empty());
	CHECK(fx.env->queue_list().empty());
	CHECK(tern::testing::dir_entries(fx.dir + "/queue").empty());
	std::string dsn = fx.maildir_message("alice");
	CHECK(dsn.rfind("Return-Path: <postmaster@mail.test.example>\r\n", 0) == 0);
	CHECK(dsn.find("Subject: mail delivery failed") != std::string::npos);
	CHECK(dsn.find("Final-Recipient: rfc822;nobody@remote.example") != std::string::npos);
	CHECK(dsn.find("Status: 5.1.1") != std::string::npos);
	CHECK(dsn.find("550 5.1.1 no such user here") != std::string::npos);
	CHECK(dsn.find("Subject: queue test") != std::string::npos);  // original headers part
	CHECK(fx.queue->counters().failed == 1);
}

TEST_CASE("queue: local recipients go to their Maildir, never to the smarthost") {
	SmtpSink sink;
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()));
	std::string prefix = "Received: local\r\n";
	CHECK(fx.enqueue("alice@test.example", {"bob@test.example"}, test_body, prefix) == "");
	REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
	CHECK(sink.connections() == 0);
	REQUIRE(fx.maildir_new("bob").size() == 1);
	// RFC 5321 4.4: the final delivery adds Return-Path before the prefix.
	CHECK(fx.maildir_message("bob") == "Return-Path: <alice@test.example>\r\n" + prefix + test_body);
	CHECK(tern::testing::dir_entries(fx.dir + "/queue").empty());
	CHECK(fx.queue->counters().local == 1);
}

TEST_CASE("queue: MX delivery in preference order, implicit MX, null MX") {
	SmtpSink sink;
	DnsServer dns;
	// remote.example: the preferred MX (127.0.0.2) refuses connections,
	// the second one is the sink.
	dns.add("remote.example", "MX", "10 mx1.remote.example");
	dns.add("remote.example", "MX", "20 mx2.remote.example");
	dns.add("mx1.remote.example", "A", "127.0.0.2");
	dns.add("mx2.remote.example", "A", "127.0.0.1");
	// good.example: the preferred MX works; the other is never looked up.
	dns.add("good.example", "MX", "20 mxb.good.example");
	dns.add("good.example", "MX", "10 mxa.good.example");
	dns.add("mxa.good.example", "A", "127.0.0.1");
	dns.add("mxb.good.example", "A", "127.0.0.3");
	// implicit.example: no MX, an A record (RFC 5321 5.1).
	dns.add("implicit.example", "A", "127.0.0.1");
	// nullmx.example: "MX 0 ." (RFC 7505).
	dns.add("nullmx.example", "MX", "0 .");
	Fixture::Settings settings;
	settings.dns = &dns;
	settings.mx_port = sink.port();
	Fixture fx("", settings);

	SUBCASE("preference order with a dead first host") {
		CHECK(fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
		REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
		REQUIRE(sink.messages().size() == 1);
		CHECK(sink.messages()[0].rcpt_to == std::vector<std::string>{"carol@remote.example"});
		auto q = dns.queries();
		auto pos = [&](const std::string& s) { return std::find(q.begin(), q.end(), s) - q.begin(); };
		CHECK(pos("remote.example MX") < pos("mx1.remote.example A"));
		CHECK(pos("mx1.remote.example A") < pos("mx2.remote.example A"));
		CHECK(pos("mx2.remote.example A") < static_cast<long>(q.size()));
	}
	SUBCASE("an attempt dials at most 20 addresses") {
		// Twenty addresses that refuse, then the sink's: never reached.
		dns.add("many.example", "MX", "10 mx.many.example");
		for (int i = 2; i <= 21; ++i) dns.add("mx.many.example", "A", "127.0.0." + std::to_string(i));
		dns.add("mx.many.example", "A", "127.0.0.1");
		CHECK(fx.enqueue("alice@test.example", {"carol@many.example"}, test_body) == "");
		REQUIRE(fx.run_until([&] { return fx.queue->counters().retried >= 1 && fx.queue->active() == 0; }));
		CHECK(sink.connections() == 0);
		auto records = fx.env->queue_list();
		REQUIRE(records.size() == 1);
		CHECK(records[0].last_error.find("20 addresses tried") != std::string::npos);
	}
	SUBCASE("the preferred host is used and the other never looked up") {
		CHECK(fx.enqueue("alice@test.example", {"dave@good.example"}, test_body) == "");
		REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
		REQUIRE(sink.messages().size() == 1);
		auto q = dns.queries();
		CHECK(std::find(q.begin(), q.end(), "mxa.good.example A") != q.end());
		CHECK(std::find(q.begin(), q.end(), "mxb.good.example A") == q.end());
	}
	SUBCASE("implicit MX") {
		CHECK(fx.enqueue("alice@test.example", {"erin@implicit.example"}, test_body) == "");
		REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
		REQUIRE(sink.messages().size() == 1);
		CHECK(sink.messages()[0].rcpt_to == std::vector<std::string>{"erin@implicit.example"});
	}
	SUBCASE("null MX fails at once with a DSN") {
		CHECK(fx.enqueue("alice@test.example", {"frank@nullmx.example"}, test_body) == "");
		REQUIRE(fx.run_until([&] {
			return fx.queue->size() == 0 && fx.queue->active() == 0 && !fx.maildir_new("alice").empty();
		}));
		CHECK(sink.connections() == 0);
		std::string dsn = fx.maildir_message("alice");
		CHECK(dsn.find("Final-Recipient: rfc822;frank@nullmx.example") != std::string::npos);
		CHECK(dsn.find("Status: 5.1.10") != std::string::npos);
	}
}

TEST_CASE("queue: a dual-stack host's 5.7 refusal on the first attempt is retried from the other family") {
	// mx.dual.example has both families: on IPv4 it refuses the recipient
	// for policy (as a host refuses mail from an address without a reverse
	// name), on IPv6 it takes it. mx.single.example has IPv4 alone.
	SmtpSink::Options ipv4_options;
	SmtpSink refusing(ipv4_options);
	SmtpSink::Replies policy;
	policy.rcpt = "550 5.7.1 no reverse name for your address";
	refusing.set_replies(policy);
	SmtpSink::Options ipv6_options;
	ipv6_options.listen_ip = "::1";
	ipv6_options.listen_port = refusing.port();
	SmtpSink taking(ipv6_options);
	DnsServer dns;
	dns.add("dual.example", "MX", "10 mx.dual.example");
	dns.add("mx.dual.example", "A", "127.0.0.1");
	dns.add("mx.dual.example", "AAAA", "::1");
	dns.add("single.example", "MX", "10 mx.single.example");
	dns.add("mx.single.example", "A", "127.0.0.1");
	Fixture::Settings settings;
	settings.dns = &dns;
	settings.mx_port = refusing.port();
	settings.retry_base_s = 450;
	Fixture fx("", settings);

	SUBCASE("first attempt over IPv4 refused and kept, the second over IPv6 delivered") {
		CHECK(fx.enqueue("alice@test.example", {"carol@dual.example"}, test_body) == "");
		REQUIRE(fx.run_until([&] { return fx.queue->counters().retried == 1 && fx.queue->active() == 0; }));
		CHECK(refusing.connections() == 1);
		CHECK(taking.connections() == 0);
		auto records = fx.env->queue_list();
		REQUIRE(records.size() == 1);
		CHECK(records[0].attempts == 1);
		CHECK(records[0].last_error == "550 5.7.1 no reverse name for your address");
		CHECK(fx.maildir_new("alice").empty());  // no DSN: it is not final
		fx.queue->kick(records[0].id);
		REQUIRE(fx.run_until([&] { return taking.messages().size() == 1 && fx.queue->size() == 0; }, 10));
		CHECK(refusing.connections() == 1);  // the second attempt started with IPv6
		CHECK(taking.messages()[0].rcpt_to == std::vector<std::string>{"carol@dual.example"});
		CHECK(fx.queue->counters().delivered == 1);
	}
	SUBCASE("the same refusal from a host of one family is final") {
		CHECK(fx.enqueue("alice@test.example", {"dave@single.example"}, test_body) == "");
		REQUIRE(fx.run_until([&] {
			return fx.queue->size() == 0 && fx.queue->active() == 0 && !fx.maildir_new("alice").empty();
		}));
		CHECK(refusing.connections() == 1);
		CHECK(fx.queue->counters().failed == 1);
		CHECK(fx.maildir_message("alice").find("Status: 5.7.1") != std::string::npos);
	}
}

// An MTA-STS policy host (RFC 8461 3.3): `openssl s_server -WWW` serves
// files from its own directory over HTTPS, with a certificate of the test
// CA, on a free loopback port.
struct PolicyServer {
	std::string dir = make_temp_dir();
	int port = tern::testing::free_tcp_port();
	pid_t pid = -1;
	PolicyServer(const tern::testing::TestCa::Issued& cert, const std::string& policy) {
		REQUIRE(mkdir((dir + "/.well-known").c_str(), 0755) == 0);
		std::ofstream(dir + "/.well-known/mta-sts.txt", std::ios::binary) << policy;
		pid = tern::testing::spawn_child(
		    {"/bin/sh", "-c",
		     "cd '" + dir + "' && exec openssl s_server -quiet -accept 127.0.0.1:" + std::to_string(port) +
		         " -cert '" + cert.cert_file + "' -key '" + cert.key_file + "' -WWW"},
		    dir + "/s_server.log");
		REQUIRE(tern::testing::wait_child_listening(pid, {port}));
	}
	~PolicyServer() {
		stop();
		remove_tree(dir);
	}
	void stop() { tern::testing::stop_child(pid); }
};

// A sink for mx.sts.example: with STARTTLS and a certificate issued for
// `name`, or ("") without TLS.
SmtpSink::Options mx_sink_options(const tern::testing::TestCa& ca, const std::string& name) {
	SmtpSink::Options o;
	if (name.empty()) return o;
	tern::testing::TestCa::Issued cert = ca.issue(name);
	o.cert_file = cert.cert_file;
	o.key_file = cert.key_file;
	return o;
}

TEST_CASE("queue: MTA-STS policies of destination domains are fetched, cached and enforced") {
	tern::testing::TestCa ca;
	tern::testing::TestCa::Issued policy_cert = ca.issue("mta-sts.sts.example");
	DnsServer dns;
	dns.add("sts.example", "MX", "10 mx.sts.example");
	dns.add("mx.sts.example", "A", "127.0.0.1");
	dns.add("_mta-sts.sts.example", "TXT", "v=STSv1; id=20261205T1;");
	dns.add("mta-sts.sts.example", "A", "127.0.0.1");
	auto policy = [](const std::string& mode, const std::string& mx) {
		return "version: STSv1\r\nmode: " + mode + "\r\nmx: " + mx + "\r\nmax_age: 86400\r\n";
	};
	// One message to carol@sts.example, the MX host being `sink` and the
	// policy host `https`; returns once the first attempt is over.
	auto first_attempt = [&](const PolicyServer& https, const SmtpSink& sink, const std::string& reuse_dir = "") {
		Fixture::Settings settings;
		settings.reuse_dir = reuse_dir;
		settings.dns = &dns;
		settings.retry_base_s = 3600;  // a second attempt only when kicked
		settings.system_ca_file = ca.ca_file();
		settings.mx_port = sink.port();
		settings.mta_sts_port = https.port;
		auto fx = std::make_unique<Fixture>("", settings);
		CHECK(fx->enqueue("alice@test.example", {"carol@sts.example"}, test_body) == "");
		REQUIRE(fx->run_until([&] {
			return fx->queue->active() == 0 &&
			    (fx->queue->size() == 0 || fx->queue->counters().retried > 0);
		}));
		return fx;
	};
	auto queued_error = [](Fixture& fx) {
		auto records = fx.env->queue_list();
		return records.size() == 1 ? records[0].last_error : std::string("no single record");
	};

	SUBCASE("enforce: delivered over STARTTLS with a certificate verified for the MX host") {
		PolicyServer https(policy_cert, policy("enforce", "*.sts.example"));
		SmtpSink sink(mx_sink_options(ca, "mx.sts.example"));
		auto fx = first_attempt(https, sink);
		REQUIRE(sink.messages().size() == 1);
		CHECK(sink.messages()[0].tls);
		auto q = dns.queries();
		CHECK(std::find(q.begin(), q.end(), "_mta-sts.sts.example TXT") != q.end());
	}
	SUBCASE("enforce: a host whose certificate names another host gets nothing") {
		PolicyServer https(policy_cert, policy("enforce", "mx.sts.example"));
		SmtpSink sink(mx_sink_options(ca, "mx.elsewhere.example"));
		auto fx = first_attempt(https, sink);
		CHECK(sink.connections() >= 1);
		CHECK(sink.messages().empty());
		CHECK(queued_error(*fx).find("not trusted") != std::string::npos);
	}
	SUBCASE("enforce: a host that offers no STARTTLS gets nothing") {
		PolicyServer https(policy_cert, policy("enforce", "mx.sts.example"));
		SmtpSink sink(mx_sink_options(ca, ""));
		auto fx = first_attempt(https, sink);
		CHECK(sink.messages().empty());
		CHECK(queued_error(*fx).find("STARTTLS") != std::string::npos);
		CHECK(fx->maildir_new("alice").empty());  // temporary: no DSN
	}
	SUBCASE(
	    "enforce: an MX host the policy does not name is not tried, and the cached policy outlives its server") {
		PolicyServer https(policy_cert, policy("enforce", "backup.sts.example"));
		SmtpSink sink(mx_sink_options(ca, ""));
		auto fx = first_attempt(https, sink);
		CHECK(sink.connections() == 0);
		CHECK(queued_error(*fx).find("MTA-STS") != std::string::npos);
		// RFC 8461 5.1: with the policy host gone, the cached policy (same
		// id in DNS) still holds.
		https.stop();
		fx->queue->kick();
		REQUIRE(fx->run_until([&] { return fx->queue->counters().retried == 2 && fx->queue->active() == 0; }));
		CHECK(sink.connections() == 0);
		CHECK(queued_error(*fx).find("MTA-STS") != std::string::npos);
	}
	SUBCASE("a fetched policy is kept across a restart and enforced from there") {
		PolicyServer https(policy_cert, policy("enforce", "mx.sts.example"));
		std::string dir;
		{
			SmtpSink sink(mx_sink_options(ca, "mx.sts.example"));
			auto fx = first_attempt(https, sink);
			REQUIRE(sink.messages().size() == 1);
			fx->keep_dir = true;
			dir = fx->dir;
		}
		https.stop();
		// A new queue over the same data dir, the policy host gone, the MX
		// host's certificate for another name: the policy from the
		// database still holds (RFC 8461 5.1) and is enforced with a
		// verified certificate; without it the message would go with
		// opportunistic TLS.
		SmtpSink sink(mx_sink_options(ca, "mx.elsewhere.example"));
		auto fx = first_attempt(https, sink, dir);
		CHECK(sink.messages().empty());
		CHECK(queued_error(*fx).find("not trusted") != std::string::npos);
	}
	SUBCASE("testing: a host the policy does not name still gets the message") {
		PolicyServer https(policy_cert, policy("testing", "backup.sts.example"));
		SmtpSink sink(mx_sink_options(ca, ""));
		auto fx = first_attempt(https, sink);
		CHECK(sink.messages().size() == 1);
	}
	SUBCASE("a policy host out of reach on its first address is asked on the next") {
		// Nothing listens on 127.0.0.2: that connect is refused, and the
		// policy comes from 127.0.0.1. Without it the unnamed MX host
		// would get the message.
		dns.remove("mta-sts.sts.example", "A");
		dns.add("mta-sts.sts.example", "A", "127.0.0.2");
		dns.add("mta-sts.sts.example", "A", "127.0.0.1");
		PolicyServer https(policy_cert, policy("enforce", "backup.sts.example"));
		SmtpSink sink(mx_sink_options(ca, ""));
		auto fx = first_attempt(https, sink);
		CHECK(sink.connections() == 0);
		CHECK(queued_error(*fx).find("MTA-STS") != std::string::npos);
	}
	SUBCASE("a policy host whose certificate does not verify gives no policy") {
		tern::testing::TestCa other_ca;
		PolicyServer https(other_ca.issue("mta-sts.sts.example"), policy("enforce", "backup.sts.example"));
		SmtpSink sink(mx_sink_options(ca, ""));
		auto fx = first_attempt(https, sink);
		CHECK(sink.messages().size() == 1);
	}
}

// One message from alice to carol@remote.example, queued for a smarthost
// sink that answers with `replies`; no second attempt during a test.
struct SmarthostAttempt {
	SmtpSink sink;
	std::unique_ptr<Fixture> fx;
	explicit SmarthostAttempt(const SmtpSink::Replies& replies) {
		sink.set_replies(replies);
		Fixture::Settings settings;
		settings.retry_base_s = 600;
		fx = std::make_unique<Fixture>("127.0.0.1:" + std::to_string(sink.port()), settings);
		CHECK(fx->enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
	}
	// Waits for the first attempt to end with the message still queued;
	// returns its last error.
	std::string deferred() {
		REQUIRE(fx->run_until([&] { return fx->queue->counters().retried == 1 && fx->queue->active() == 0; }));
		CHECK(fx->queue->size() == 1);
		CHECK(fx->queue->counters().failed == 0);
		CHECK(fx->maildir_new("alice").empty());  // no DSN
		auto records = fx->env->queue_list();
		return records.size() == 1 ? records[0].last_error : std::string("no single record");
	}
};

TEST_CASE("queue: 8-bit data to a next hop without 8BITMIME fails at once with 5.6.3, and nothing is sent") {
	// RFC 6152 3: no 8-bit data to a server that does not offer 8BITMIME.
	SmtpSink sink;
	SmtpSink::Replies replies;
	replies.ehlo = "250-sink.test.example\r\n250 PIPELINING";
	sink.set_replies(replies);
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()));
	const std::string body =
	    "From: alice@test.example\r\nSubject: 8bit\r\n\r\ngr\xc3\xbc\xc3\x9f"
	    "e\r\n";
	REQUIRE(fx.enqueue("alice@test.example", {"carol@remote.example"}, body, "", {}, "", true) == "");
	REQUIRE(fx.run_until(
	    [&] { return fx.queue->size() == 0 && fx.queue->active() == 0 && !fx.maildir_new("alice").empty(); }));
	CHECK(fx.queue->counters().failed == 1);
	CHECK(sink.messages().empty());
	std::string dsn = fx.maildir_message("alice");
	INFO(dsn);
	CHECK(dsn.find("Status: 5.6.3\r\n") != std::string::npos);
	CHECK(dsn.find("does not support 8BITMIME, required by the message") != std::string::npos);
}

TEST_CASE("queue: an AUTH keyword without mechanisms in the EHLO reply is no reason not to deliver") {
	// RFC 4954 3 wants at least one mechanism after AUTH; a server that
	// lists none offers nothing to use, and the message goes without AUTH.
	// (Reading that line threw, and the attempt then hung until its timeout.)
	SmtpSink sink;
	SmtpSink::Replies replies;
	replies.ehlo = "250-sink.test.example\r\n250-AUTH\r\n250-AUTH=\r\n250 8BITMIME";
	sink.set_replies(replies);
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()));
	REQUIRE(fx.enqueue("alice@test.example", {"carol@remote.example"}, "Subject: t\r\n\r\nbody\r\n") == "");
	REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
	CHECK(fx.queue->counters().delivered == 1);
	CHECK(sink.messages().size() == 1);
}

TEST_CASE("queue: a server slow to answer QUIT does not hold up the next delivery to its domain") {
	// The transaction is recorded before QUIT (RFC 5321 4.1.1.10 has the
	// client wait for the 221); the domain's one delivery slot is not the
	// QUIT's to keep.
	SmtpSink sink;
	SmtpSink::Replies replies;
	replies.quit_delay_ms = 8000;
	sink.set_replies(replies);
	sink.set_concurrent(true);
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()));
	REQUIRE(fx.enqueue("alice@test.example", {"carol@remote.example"}, "Subject: 1\r\n\r\none\r\n") == "");
	REQUIRE(fx.run_until([&] { return sink.messages().size() == 1; }));
	REQUIRE(fx.enqueue("alice@test.example", {"dan@remote.example"}, "Subject: 2\r\n\r\ntwo\r\n") == "");
	auto queued = std::chrono::steady_clock::now();
	REQUIRE(fx.run_until([&] { return fx.queue->counters().delivered == 2; }));
	CHECK(std::chrono::steady_clock::now() - queued < std::chrono::seconds(6));
	CHECK(sink.messages().size() == 2);
}

TEST_CASE("queue: a reply code outside 200-599 defers the message, never bounces it") {
	// RFC 5321 4.2.1: a 6xx is no reply; read as a number it would pass
	// for a permanent refusal.
	SmtpSink::Replies replies;
	replies.rcpt = "600 6.0.0 odd";
	SmarthostAttempt attempt(replies);
	CHECK(attempt.deferred().find("outside 200-599") != std::string::npos);
}

TEST_CASE("queue: a success reply where another was due defers the message as a protocol error") {
	// RFC 5321 4.2.1: a 250 to DATA (a server a reply ahead) says nothing
	// about the message; its code and status are not the message's.
	for (auto set : {+[](SmtpSink::Replies& r) { r.data = "250 2.1.5 ok"; },
	                 +[](SmtpSink::Replies& r) { r.rcpt = "354 go ahead"; }}) {
		SmtpSink::Replies replies;
		set(replies);
		SmarthostAttempt attempt(replies);
		std::string deferred = attempt.deferred();
		CHECK(deferred.starts_with("unexpected reply: "));
		CHECK(attempt.sink.messages().empty());
	}
}

TEST_CASE("queue: a temporary refusal of EHLO defers the message; no HELO") {
	// RFC 5321 3.2: HELO is for a server that does not know EHLO (5xx);
	// a 4xx is "later".
	SmtpSink::Replies replies;
	replies.ehlo = "451 4.3.0 try later";
	SmarthostAttempt attempt(replies);
	CHECK(attempt.deferred().find("451 4.3.0 try later") != std::string::npos);
	CHECK(attempt.sink.messages().empty());
}

namespace {

// The failure notice of one message after its only attempt at `smarthost`.
std::string notice_after_one_attempt(const std::string& smarthost) {
	Fixture::Settings settings;
	settings.max_attempts = 1;
	Fixture fx(smarthost, settings);
	REQUIRE(fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
	REQUIRE(fx.run_until(
	    [&] { return fx.queue->size() == 0 && fx.queue->active() == 0 && !fx.maildir_new("alice").empty(); }));
	return fx.maildir_message("alice");
}

}  // namespace

TEST_CASE("queue: a notice about a host's refusal before MAIL names that host as Remote-MTA") {
	// RFC 3464 2.3.5: the Remote-MTA is the one whose reply the
	// Diagnostic-Code quotes, also when it refused before the transaction.
	auto notice_after = [](const SmtpSink::Replies& replies) {
		SmtpSink sink;
		sink.set_replies(replies);
		return notice_after_one_attempt("127.0.0.1:" + std::to_string(sink.port()));
	};
	SmtpSink::Replies replies;
	SUBCASE("EHLO") {
		replies.ehlo = "451 4.3.0 try later";
		std::string dsn = notice_after(replies);
		INFO(dsn);
		CHECK(dsn.find("\r\nRemote-MTA: dns; 127.0.0.1 ([127.0.0.1])\r\n") != std::string::npos);
		CHECK(dsn.find("\r\nDiagnostic-Code: smtp; 451 4.3.0 try later\r\n") != std::string::npos);
		// The reply's status, made final as after any last attempt (not 5.0.0).
		CHECK(dsn.find("\r\nStatus: 5.3.0\r\n") != std::string::npos);
		// The text still says where it failed.
		CHECK(dsn.find("EHLO to 127.0.0.1: 451 4.3.0 try later") != std::string::npos);
	}
	SUBCASE("greeting") {
		replies.greeting = "554 5.7.1 no mail from you";
		std::string dsn = notice_after(replies);
		INFO(dsn);
		CHECK(dsn.find("\r\nRemote-MTA: dns; 127.0.0.1 ([127.0.0.1])\r\n") != std::string::npos);
		CHECK(dsn.find("\r\nDiagnostic-Code: smtp; 554 5.7.1 no mail from you\r\n") != std::string::npos);
		CHECK(dsn.find("\r\nStatus: 5.7.1\r\n") != std::string::npos);
	}
}

TEST_CASE("queue: a host that refuses before MAIL is told QUIT, and the result does not wait for its reply") {
	// RFC 5321 3.1: after a 554 greeting the client should send QUIT;
	// 4.1.1.10: a session ends with QUIT. The sink waits 5 s before its
	// 221: the failure must be settled (the notice written) without it.
	SmtpSink sink;
	SmtpSink::Replies replies;
	replies.quit_delay_ms = 5000;
	SUBCASE("554 greeting") { replies.greeting = "554 5.7.1 no mail from you"; }
	SUBCASE("451 to EHLO") { replies.ehlo = "451 4.3.0 try later"; }
	sink.set_replies(replies);
	Fixture::Settings settings;
	settings.max_attempts = 1;
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()), settings);
	REQUIRE(fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
	const int64_t started = now_ms();
	REQUIRE(fx.run_until(
	    [&] { return fx.queue->size() == 0 && fx.queue->active() == 0 && !fx.maildir_new("alice").empty(); }));
	CHECK(now_ms() - started < 4000);
	for (int64_t until = now_ms() + 2000; sink.quits() == 0 && now_ms() < until;) usleep(10000);
	CHECK(sink.quits() == 1);
}

TEST_CASE("queue: a timeout's error says what was awaited from which host") {
	// A port that is listened on but never accepted: the connection
	// completes in the kernel and no greeting ever comes.
	int silent = take_tcp_port(0);
	REQUIRE(silent >= 0);
	int port = listening_port(silent);
	Fixture::Settings settings;
	settings.max_attempts = 1;
	settings.greeting_timeout_s = 0.5;
	Fixture fx("127.0.0.1:" + std::to_string(port), settings);
	REQUIRE(fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
	REQUIRE(fx.run_until(
	    [&] { return fx.queue->size() == 0 && fx.queue->active() == 0 && !fx.maildir_new("alice").empty(); }));
	::close(silent);
	std::string dsn = fx.maildir_message("alice");
	INFO(dsn);
	CHECK(dsn.find("timeout waiting for the greeting from 127.0.0.1 [127.0.0.1]") != std::string::npos);
}

TEST_CASE("queue: a notice quotes the last host's failure, not an earlier host's reply") {
	// mx1 refuses EHLO; mx2 has no address: the notice is about mx2's
	// failure and names no Remote-MTA and no Diagnostic-Code of mx1's.
	SmtpSink sink;
	SmtpSink::Replies replies;
	replies.ehlo = "451 4.3.0 try later";
	sink.set_replies(replies);
	DnsServer dns;
	dns.add("remote.example", "MX", "10 mx1.remote.example");
	dns.add("remote.example", "MX", "20 mx2.remote.example");
	dns.add("mx1.remote.example", "A", "127.0.0.1");
	Fixture::Settings settings;
	settings.dns = &dns;
	settings.mx_port = sink.port();
	settings.max_attempts = 1;
	Fixture fx("", settings);
	REQUIRE(fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
	REQUIRE(fx.run_until(
	    [&] { return fx.queue->size() == 0 && fx.queue->active() == 0 && !fx.maildir_new("alice").empty(); }));
	CHECK(sink.connections() == 1);
	std::string dsn = fx.maildir_message("alice");
	INFO(dsn);
	CHECK(dsn.find("no address for host mx2.remote.example") != std::string::npos);
	CHECK(dsn.find("\r\nStatus: 5.4.4\r\n") != std::string::npos);
	CHECK(dsn.find("Remote-MTA:") == std::string::npos);
	CHECK(dsn.find("Diagnostic-Code:") == std::string::npos);
}

TEST_CASE("queue: a notice about a host never reached names no Remote-MTA") {
	// Nothing listens on that port.
	std::string dsn = notice_after_one_attempt("127.0.0.1:" + std::to_string(tern::testing::free_tcp_port()));
	INFO(dsn);
	CHECK(dsn.find("Action: failed") != std::string::npos);
	CHECK(dsn.find("Remote-MTA:") == std::string::npos);
}

TEST_CASE("queue: a stray line after the reply to the final dot settles the message once") {
	// The server refuses the data and sends a malformed line in the same
	// segment: one failed DSN, not one for the refusal and another for the
	// protocol error.
	SmtpSink::Replies replies;
	replies.data_end = "550 5.7.1 no\r\nX";
	SmarthostAttempt attempt(replies);
	Fixture& fx = *attempt.fx;
	REQUIRE(fx.run_until(
	    [&] { return fx.queue->size() == 0 && fx.queue->active() == 0 && !fx.maildir_new("alice").empty(); }));
	// Time for a second settlement to show, had there been one.
	fx.run_until([] { return false; }, 1.0);
	CHECK(fx.queue->counters().failed == 1);
	CHECK(fx.maildir_new("alice").size() == 1);
}

TEST_CASE("queue: ternctl queue list/show/kick/drop") {
	const std::string hostile_rcpt =
	    "\xc2\x9b"
	    "2J\xe2\x80\xae"
	    "evil@remote.example";
	std::string dir;
	std::shared_ptr<const config::Config> config;
	{
		SmtpSink sink;
		SmtpSink::Replies replies;
		// With bytes a terminal would act on: listed escaped, as logs show them.
		replies.rcpt = "451 4.3.0 later \x1b]0;t\x07\xff";
		sink.set_replies(replies);
		Fixture::Settings settings;
		settings.retry_base_s = 600;  // no second attempt during the test
		auto fx = std::make_unique<Fixture>("127.0.0.1:" + std::to_string(sink.port()), settings);
		// A client's SMTPUTF8 address may hold a C1 control (U+009B, CSI)
		// and a bidirectional override (U+202E): listed escaped too.
		CHECK(fx->enqueue("alice@test.example", {"carol@remote.example", "dan@remote.example", hostile_rcpt},
		                  test_body) == "");
		REQUIRE(fx->run_until([&] { return fx->queue->counters().retried == 3 && fx->queue->active() == 0; }));
		fx->close();  // one Env per directory per process: ternctl opens its own
		dir = fx->dir;
		config = fx->config;
		fx->keep_dir = true;
		fx.reset();
	}
	std::ostringstream out, err;
	REQUIRE(queue::run_queue_command(*config, {"list"}, out, err) == 0);
	std::istringstream lines(out.str());
	std::string header, line1, line2, line3, extra;
	std::getline(lines, header);
	std::getline(lines, line1);
	std::getline(lines, line2);
	std::getline(lines, line3);
	CHECK(line3.find(" <\\xc2\\x9b2J\\xe2\\x80\\xaeevil@remote.example> ") != std::string::npos);
	CHECK(out.str().find("\xc2\x9b") == std::string::npos);
	CHECK(header == "ID NEXT-ATTEMPT ATTEMPTS FROM TO LAST-ERROR");
	CHECK(line1.find(" 1 <alice@test.example> <carol@remote.example> 451 4.3.0 later") != std::string::npos);
	CHECK(line2.find(" 1 <alice@test.example> <dan@remote.example> 451 4.3.0 later") != std::string::npos);
	CHECK(line1.ends_with(" 451 4.3.0 later \\x1b]0;t\\x07\\xff"));
	CHECK_FALSE(std::getline(lines, extra));
	uint64_t id1 = std::stoull(line1.substr(0, line1.find(' ')));
	uint64_t id2 = std::stoull(line2.substr(0, line2.find(' ')));

	out.str("");
	REQUIRE(queue::run_queue_command(*config, {"show", std::to_string(id1)}, out, err) == 0);
	CHECK(out.str().find("to: <carol@remote.example>\n") != std::string::npos);
	CHECK(out.str().find("attempts: 1\n") != std::string::npos);
	CHECK(out.str().find("last_error: 451 4.3.0 later \\x1b]0;t\\x07\\xff\n") != std::string::npos);
	out.str("");
	const uint64_t id3 = std::stoull(line3.substr(0, line3.find(' ')));
	REQUIRE(queue::run_queue_command(*config, {"show", std::to_string(id3)}, out, err) == 0);
	CHECK(out.str().find("to: <\\xc2\\x9b2J\\xe2\\x80\\xaeevil@remote.example>\n") != std::string::npos);
	CHECK(out.str().find("\xe2\x80\xae") == std::string::npos);

	out.str("");
	err.str("");
	// A negative answer, on stdout like `dmarc lookup`'s `none`.
	CHECK(queue::run_queue_command(*config, {"show", "999999"}, out, err) == 1);
	CHECK(out.str() == "no such message\n");
	CHECK(err.str() == "");
	out.str("");
	CHECK(queue::run_queue_command(*config, {"drop", "999999"}, out, err) == 1);
	CHECK(out.str() == "no such message\n");
	out.str("");
	CHECK(queue::run_queue_command(*config, {"kick", "x1"}, out, err) == 1);
	CHECK(out.str() == "no such message\n");
	CHECK(err.str() == "");
	CHECK(queue::run_queue_command(*config, {"frobnicate"}, out, err) == 2);

	out.str("");
	REQUIRE(queue::run_queue_command(*config, {"kick", std::to_string(id2)}, out, err) == 0);
	CHECK(out.str() == "kicked 1\n");
	{
		store::Env env(dir);
		auto r = env.queue_get(id2);
		REQUIRE(r);
		CHECK(r->next_attempt <= static_cast<int64_t>(time(nullptr)));
	}

	CHECK(tern::testing::dir_entries(dir + "/queue").size() == 3);
	out.str("");
	REQUIRE(queue::run_queue_command(*config, {"drop", std::to_string(id1)}, out, err) == 0);
	CHECK(out.str() == "dropped " + std::to_string(id1) + "\n");
	CHECK(tern::testing::dir_entries(dir + "/queue").size() == 2);  // the other records' links stay
	REQUIRE(queue::run_queue_command(*config, {"drop", std::to_string(id3)}, out, err) == 0);
	CHECK(tern::testing::dir_entries(dir + "/queue").size() == 1);
	// A change tells a running ternd named in pid_file. A ternd killed with
	// -9 leaves its pid file, and the number may be another program's now:
	// that program must not get the SIGUSR2 (which would end it).
	pid_t other = testing::spawn_child({"/bin/sleep", "30"}, "/dev/null");
	REQUIRE(other > 0);
	config::Config stale_pid = *config;
	stale_pid.pid_file = dir + "/ternd.pid";
	testing::write_file(stale_pid.pid_file, std::to_string(other) + "\n");
	REQUIRE(queue::run_queue_command(stale_pid, {"drop", std::to_string(id2)}, out, err) == 0);
	usleep(200000);
	int status = 0;
	CHECK(waitpid(other, &status, WNOHANG) == 0);
	testing::stop_child(other);
	CHECK(tern::testing::dir_entries(dir + "/queue").empty());
	out.str("");
	REQUIRE(queue::run_queue_command(*config, {"list"}, out, err) == 0);
	CHECK(out.str() == "ID NEXT-ATTEMPT ATTEMPTS FROM TO LAST-ERROR\n");
	remove_tree(dir);
}

// A next hop that defers every recipient (451 4.2.0), and a queue that
// sends a delayed notice after the first attempt and gives up after the
// second.
struct BusyMailbox {
	SmtpSink sink;
	std::unique_ptr<Fixture> fx;
	BusyMailbox() {
		SmtpSink::Replies replies;
		replies.rcpt = "451 4.2.0 mailbox busy";
		sink.set_replies(replies);
		Fixture::Settings settings;
		settings.max_attempts = 2;
		settings.delayed_dsn_after = 1;
		fx = std::make_unique<Fixture>("127.0.0.1:" + std::to_string(sink.port()), settings);
	}
};

TEST_CASE("queue: delayed DSN after the configured attempt, failed DSN after the last one") {
	BusyMailbox busy;
	Fixture& fx = *busy.fx;
	CHECK(fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
	// The second attempt is the last one (max_attempts 2): a failed DSN.
	REQUIRE(fx.run_until(
	    [&] { return fx.queue->size() == 0 && fx.queue->active() == 0 && fx.maildir_new("alice").size() == 2; }));
	CHECK(fx.queue->counters().retried == 1);
	CHECK(fx.queue->counters().failed == 1);
	int failed = 0, delayed = 0;
	for (size_t i = 0; i < 2; i++) {
		std::string dsn = fx.maildir_message("alice", i);
		if (dsn.find("Action: failed") != std::string::npos) {
			failed++;
			CHECK(dsn.find("Subject: mail delivery failed") != std::string::npos);
			// The last 4.2.0 made final: 5.2.0, as the model reports it.
			CHECK(dsn.find("Status: 5.2.0\r\n") != std::string::npos);
		}
		if (dsn.find("Action: delayed") != std::string::npos) {
			delayed++;
			CHECK(dsn.find("Subject: mail delivery delayed") != std::string::npos);
			CHECK(dsn.find("Status: 4.2.0") != std::string::npos);
			CHECK(dsn.find("Will-Retry-Until: ") != std::string::npos);
		}
	}
	CHECK(failed == 1);
	CHECK(delayed == 1);
	CHECK(tern::testing::dir_entries(fx.dir + "/queue").empty());
}

TEST_CASE("queue: the notices of an SMTPUTF8 message take the UTF-8 form; the delayed text names the ASCII domain") {
	// RFC 6533, as the model writes them into the sender's mailbox.
	BusyMailbox busy;
	Fixture& fx = *busy.fx;
	const std::string body =
	    "From: alice@test.example\r\nTo: carol@b\xc3\xbc"
	    "cher.example\r\nSubject: hi\r\n\r\nhi\r\n";
	CHECK(fx.enqueue("alice@test.example",
	                 {"carol@b\xc3\xbc"
	                  "cher.example"},
	                 body, "", {}, "", true, true) == "");
	REQUIRE(fx.run_until(
	    [&] { return fx.queue->size() == 0 && fx.queue->active() == 0 && fx.maildir_new("alice").size() == 2; }));
	for (size_t i = 0; i < 2; i++) {
		std::string dsn = fx.maildir_message("alice", i);
		INFO(dsn);
		CHECK(dsn.find("message/global-delivery-status") != std::string::npos);
		CHECK(dsn.find("Final-Recipient: utf-8;carol@b\xc3\xbc"
		               "cher.example\r\n") != std::string::npos);
		if (dsn.find("Action: delayed") != std::string::npos)
			CHECK(dsn.find("\tcarol@xn--bcher-kva.example\r\n") != std::string::npos);
		else
			CHECK(dsn.find("\tcarol@b\xc3\xbc"
			               "cher.example\r\n") != std::string::npos);
	}
}

TEST_CASE("queue: records survive a restart and are delivered by the next start") {
	SmtpSink sink;
	SmtpSink::Replies replies;
	replies.rcpt = "421 4.3.2 going down";
	sink.set_replies(replies);
	std::string dir;
	{
		Fixture::Settings first;
		first.retry_base_s = 600;
		Fixture fx("127.0.0.1:" + std::to_string(sink.port()), first);
		CHECK(fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
		REQUIRE(fx.run_until([&] { return fx.queue->counters().retried == 1 && fx.queue->active() == 0; }));
		fx.keep_dir = true;
		dir = fx.dir;
	}
	sink.set_replies(SmtpSink::Replies{});
	Fixture::Settings settings;
	settings.reuse_dir = dir;
	settings.retry_base_s = 600;
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()), settings);
	REQUIRE(fx.run_until([&] { return fx.queue->size() == 1; }, 5));
	// The record waits for its next attempt, 10 minutes away...
	fx.run_until([] { return false; }, 0.3);
	CHECK(sink.messages().empty());
	CHECK(fx.queue->active() == 0);
	// ...unless kicked.
	fx.queue->kick();
	REQUIRE(fx.run_until([&] { return sink.messages().size() == 1 && fx.queue->size() == 0; }, 10));
	CHECK(sink.messages()[0].data == test_body);
	CHECK(fx.env->queue_list().empty());
	CHECK(tern::testing::dir_entries(fx.dir + "/queue").empty());
}

TEST_CASE("queue: a DSN's UTF-8 variant goes to SMTPUTF8 servers; no DSN about a DSN") {
	SmtpSink sink;  // offers SMTPUTF8
	Fixture fx("127.0.0.1:" + std::to_string(sink.port()));
	std::string variant =
	    "From: <postmaster@mail.test.example>\r\nSubject: mail delivery failure\r\n\r\nj\xc3\xbcrgen\r\n";
	CHECK(fx.enqueue("", {"carol@remote.example"}, test_body, "", {}, variant) == "");
	REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
	REQUIRE(sink.messages().size() == 1);
	CHECK(sink.messages()[0].mail_from == "");
	CHECK(sink.messages()[0].data == variant);

	SmtpSink::Replies replies;
	replies.rcpt = "550 5.1.1 gone";
	sink.set_replies(replies);
	CHECK(fx.enqueue("", {"gone@remote.example"}, test_body) == "");
	REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
	CHECK(fx.queue->counters().failed == 1);
	CHECK(fx.maildir_new("alice").empty());
}

// ---------------------------------------------------------------- STARTTLS
// The shared SMTP sink speaks no TLS, so this file has its own small
// responder: one thread, blocking sockets, STARTTLS with a self-signed
// certificate (or, in `break_tls` mode, a 220 followed by a hang-up).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "net/tls.h"

namespace {

class TlsResponder {
public:
	TlsResponder(const std::string& dir, bool break_tls) : break_tls_(break_tls) {
		net::generate_self_signed(dir + "/cert.pem", dir + "/key.pem", "tls.test.example");
		context_ = std::make_shared<net::TlsServerContext>(dir + "/cert.pem", dir + "/key.pem");
		listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sockaddr_in sin{};
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		REQUIRE(bind(listen_fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0);
		REQUIRE(listen(listen_fd_, 8) == 0);
		socklen_t len = sizeof sin;
		getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sin), &len);
		port_ = ntohs(sin.sin_port);
		thread_ = std::thread([this] { serve(); });
	}
	~TlsResponder() {
		stop_ = true;
		shutdown(listen_fd_, SHUT_RDWR);
		close(listen_fd_);
		thread_.join();
	}
	int port() const { return port_; }
	int connections() const { return connections_; }
	std::vector<std::pair<bool, std::string>> messages()  // (over TLS, data)
	{
		std::lock_guard<std::mutex> lock(mu_);
		return messages_;
	}

private:
	struct Conn {
		int fd;
		std::unique_ptr<net::TlsSession> tls;
		std::string in;
		bool write(const std::string& s) {
			size_t n = 0;
			if (tls) return tls->write(s.data(), s.size(), n) == net::IoStatus::ok;
			return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
		}
		bool read_line(std::string& line) {
			for (;;) {
				size_t nl = in.find("\r\n");
				if (nl != std::string::npos) {
					line = in.substr(0, nl);
					in.erase(0, nl + 2);
					return true;
				}
				char buf[4096];
				size_t n = 0;
				if (tls) {
					if (tls->read(buf, sizeof buf, n) != net::IoStatus::ok) return false;
				} else {
					ssize_t r = ::recv(fd, buf, sizeof buf, 0);
					if (r <= 0) return false;
					n = static_cast<size_t>(r);
				}
				in.append(buf, n);
			}
		}
	};

	void serve() {
		while (!stop_) {
			int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
			if (fd < 0) return;
			connections_++;
			session(fd);
			close(fd);
		}
	}

	void session(int fd) {
		Conn c{fd, nullptr, {}};
		c.write("220 tls.test.example ESMTP\r\n");
		std::string line;
		while (c.read_line(line)) {
			std::string verb = line.substr(0, 4);
			if (verb == "EHLO") {
				c.write(c.tls ? "250-tls.test.example\r\n250 8BITMIME\r\n"
				              : "250-tls.test.example\r\n250-STARTTLS\r\n250 8BITMIME\r\n");
			} else if (line == "STARTTLS") {
				c.write("220 2.0.0 go ahead\r\n");
				if (break_tls_) return;  // hang up instead of a handshake
				c.tls = std::make_unique<net::TlsSession>(context_, fd);
				if (c.tls->handshake() != net::IoStatus::ok) return;
			} else if (line == "DATA") {
				c.write("354 go\r\n");
				std::string data;
				while (c.read_line(line) && line != ".")
					data += (line.rfind("..", 0) == 0 ? line.substr(1) : line) + "\r\n";
				{
					std::lock_guard<std::mutex> lock(mu_);
					messages_.emplace_back(c.tls != nullptr, data);
				}
				c.write("250 2.0.0 ok\r\n");
			} else if (line == "QUIT") {
				c.write("221 bye\r\n");
				return;
			} else {
				c.write("250 ok\r\n");
			}
		}
	}

	bool break_tls_;
	std::shared_ptr<net::TlsServerContext> context_;
	int listen_fd_ = -1;
	int port_ = 0;
	std::atomic<bool> stop_{false};
	std::atomic<int> connections_{0};
	std::thread thread_;
	std::mutex mu_;
	std::vector<std::pair<bool, std::string>> messages_;
};

}  // namespace

TEST_CASE("queue: STARTTLS is used when offered") {
	std::string certs = make_temp_dir();
	TlsResponder responder(certs, false);
	Fixture fx("127.0.0.1:" + std::to_string(responder.port()));
	CHECK(fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
	REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
	auto msgs = responder.messages();
	REQUIRE(msgs.size() == 1);
	CHECK(msgs[0].first == true);
	CHECK(msgs[0].second == test_body);
	CHECK(fx.queue->counters().delivered == 1);
	remove_tree(certs);
}

TEST_CASE("queue: a failed TLS handshake is retried once without TLS") {
	std::string certs = make_temp_dir();
	TlsResponder responder(certs, true);
	Fixture fx("127.0.0.1:" + std::to_string(responder.port()));
	CHECK(fx.enqueue("alice@test.example", {"carol@remote.example"}, test_body) == "");
	REQUIRE(fx.run_until([&] { return fx.queue->size() == 0 && fx.queue->active() == 0; }));
	auto msgs = responder.messages();
	REQUIRE(msgs.size() == 1);
	CHECK(msgs[0].first == false);
	CHECK(responder.connections() == 2);
	remove_tree(certs);
}
