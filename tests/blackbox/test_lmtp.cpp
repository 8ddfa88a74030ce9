// LMTP delivery (RFC 2033) to a real Dovecot from Debian, started privately
// on loopback: accounts with delivery.lmtp get their mail through Dovecot's
// LMTP (unix socket or TCP) instead of tern's Maildir writer; Dovecot's
// per-recipient answers become tern's per-recipient results; a server that
// is down or stalls gets the client a 451 4.3.0 in bounded time, and
// nothing is lost or half-delivered.
#include <csignal>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <thread>

#include "bb.h"
#include "metrics_page.h"
#include "helpers/dovecot.h"
#include "helpers/smtp_sink.h"
#include "helpers/submission_setup.h"
#include "helpers/tls_tools.h"

namespace {

bool dovecot_usable() {
	if (geteuid() != 0 || !DovecotServer::available() || access("/usr/lib/dovecot/lmtp", X_OK) != 0) {
		MESSAGE(
		    "skipped: needs root and Debian's dovecot-imapd and dovecot-lmtpd (contrib/debian-packages.txt)");
		return false;
	}
	return true;
}

// alice and carol are tern accounts; only alice exists in Dovecot.
const char* two_accounts =
    R"("accounts": {"carol": {"domain": "test.example", "destinations": {"carol@test.example": {}}}})";

// A started Dovecot that knows only alice@test.example, with a mail store
// of its own (only Dovecot writes there), removed at the end.
struct AliceDovecot {
	TempDir root{"tern-lmtp-"};
	std::unique_ptr<DovecotServer> server;
	AliceDovecot() {
		chmod(root.path().c_str(), 0755);
		std::string dir = root.path() + "/dovecot-mail";
		mkdir(dir.c_str(), 0755);
		chown_tree_to_nobody(dir);
		server = std::make_unique<DovecotServer>(dir + "/Maildir", "alice@test.example", "imap-secret");
		server->set_known_users({"alice@test.example"});
	}
	~AliceDovecot() { server.reset(); }
	// "exists N" for alice's INBOX, then its first message as IMAP gives it.
	RunResult inbox_and_first_message() const {
		return server->imap(
		    "typ, data = imap.select('INBOX')\n"
		    "print('exists', data[0].decode())\n"
		    "typ, data = imap.fetch('1', '(BODY.PEEK[])')\n"
		    "sys.stdout.write(data[0][1].decode())\n");
	}
	// How many messages alice's INBOX holds, as IMAP says ("exists N").
	std::string inbox_count() const {
		return server->imap("typ, data = imap.select('INBOX')\nprint('exists', data[0].decode())\n").output;
	}
};

// The config patch that sends every account's mail to `target` over LMTP,
// with `extra` members; with Dovecot, mail belongs to nobody, so ternd runs
// as nobody too.
size_t occurrences(const std::string& text, const std::string& what) {
	size_t n = 0;
	for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
	return n;
}

std::string lmtp_patch(const std::string& target, int timeout_s = 30, bool as_nobody = false,
                       const std::string& extra = "") {
	return std::string("{") + (as_nobody ? R"("user": "nobody", )" : "") + two_accounts +
	    R"(, "delivery": {"lmtp": ")" + target + R"(", "lmtp_timeout_s": )" + std::to_string(timeout_s) + "}" +
	    (extra.empty() ? "" : ", " + extra) + "}";
}

// Plain submission (no STARTTLS needed) and queue settings (`queue_keys`,
// a JSON members list) beside the LMTP patch, for the tests whose mail
// goes through the queue.
std::string submission_queue_extra(const std::string& queue_keys) {
	return R"("listeners": {"test": {"submission": {"require_starttls": false}}}, "queue": {)" + queue_keys + "}";
}

// The Dovecot a test delivers to, started; nullptr (the test is skipped)
// when this machine cannot run it.
std::unique_ptr<AliceDovecot> started_dovecot() {
	if (!dovecot_usable()) return nullptr;
	auto store = std::make_unique<AliceDovecot>();
	REQUIRE_MESSAGE(store->server->start(), store->server->error());
	return store;
}

// ternd with `options`, started as nobody, its folders given to nobody
// first. With alice_password, alice's password is set before the start:
// ternctl run as root works as the config's user (nobody), who must reach
// data_dir, as ternd after its privilege drop.
std::unique_ptr<TernDaemon> start_as_nobody(DaemonOptions options, const std::string& alice_password = "") {
	options.start = false;
	auto daemon = std::make_unique<TernDaemon>(options);
	daemon->write_config();
	chown_tree_to_nobody(daemon->dir());
	if (!alice_password.empty()) {
		std::string out;
		REQUIRE_MESSAGE(set_password(*daemon, "alice", alice_password, &out), out);
	}
	REQUIRE_MESSAGE(daemon->start(), daemon->error());
	return daemon;
}

// Polls ≤ timeout_ms until the daemon's log contains `text`.
bool wait_for_log(const TernDaemon& daemon, const std::string& text, int timeout_ms) {
	for (int waited = 0; waited < timeout_ms; waited += 100) {
		if (contains(daemon.log_text(), text)) return true;
		usleep(100000);
	}
	return contains(daemon.log_text(), text);
}

struct Elapsed {
	std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
	double seconds() const {
		return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
	}
};

}  // namespace

TEST_CASE("lmtp: a message delivered over LMTP lands in Dovecot's mailbox, headers and a leading dot intact") {
	auto store = started_dovecot();
	if (!store) return;
	DovecotServer& dovecot = *store->server;

	std::string target;
	SUBCASE("unix socket") { target = "unix:" + dovecot.lmtp_socket(); }
	SUBCASE("TCP") { target = "inet:127.0.0.1:" + std::to_string(dovecot.lmtp_port()); }

	auto started = start_as_nobody({.config_patch = lmtp_patch(target, 30, true)});
	TernDaemon& daemon = *started;

	SmtpClient c = connect_and_ehlo(daemon);
	// Several of the client's 64 KiB file chunks, with dot lines throughout.
	std::string body = "First line.\r\n.leading dot\r\n..two dots\r\n";
	for (int i = 0; i < 5000; ++i)
		body += (i % 7 == 0 ? "." : "") + std::to_string(i) + std::string(60, 'x') + "\r\n";
	body += "Last line.\r\n";
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, make_message("over lmtp", body));
	INFO(log_tail(daemon) << "\n" << dovecot.log_text());
	REQUIRE(t.step == "END");
	CHECK(t.reply.code == 250);

	RunResult r = store->inbox_and_first_message();
	INFO(r.output);
	REQUIRE(r.exit_code == 0);
	CHECK(contains(r.output, "exists 1"));
	CHECK(contains(r.output, "Return-Path: <bob@sender.example>\r\n"));
	// Dovecot's LMTP, the final delivery, adds it (RFC 5321 4.4); tern does not add another.
	CHECK(occurrences(r.output, "Return-Path:") == 1);
	CHECK(contains(r.output, "Received: from client.sender.example"));
	CHECK(contains(r.output, "for <alice@test.example>"));  // one recipient: the "for" clause
	CHECK(contains(r.output, "Authentication-Results: "));
	CHECK(contains(r.output, "Subject: over lmtp\r\n"));
	CHECK(contains(r.output, "\r\n\r\n" + body));  // the body exactly, dots as sent
	// Dovecot adds its own Delivered-To: the message really went through LMTP.
	CHECK(contains(r.output, "Delivered-To: alice@test.example"));
	// tern wrote nothing into its own Maildir for alice.
	CHECK(maildir_files(daemon.maildir("alice")).empty());
	CHECK(contains(daemon.log_text(), "message delivered"));
}

TEST_CASE("lmtp: one message for an LMTP account and a Maildir account reaches both whole") {
	// The Maildir copy is written (and its spool file recycled) while the
	// LMTP client still reads the same file: it must read all of it.
	auto store = started_dovecot();
	if (!store) return;
	DovecotServer& dovecot = *store->server;
	// alice's own delivery.lmtp; carol keeps the Maildir.
	std::string patch = std::string(R"({"user": "nobody", "accounts": {"carol": {"domain": "test.example", )") +
	    R"("destinations": {"carol@test.example": {}}}, "alice": {"delivery": {"lmtp": "inet:127.0.0.1:)" +
	    std::to_string(dovecot.lmtp_port()) + R"("}}}})";
	auto started = start_as_nobody({.config_patch = patch});
	TernDaemon& daemon = *started;

	SmtpClient c = connect_and_ehlo(daemon);
	// Many of the LMTP client's file chunks: it is still reading when the
	// Maildir copy is done.
	std::string body;
	for (int i = 0; i < 20000; ++i) body += std::to_string(i) + std::string(60, 'y') + "\r\n";
	body += "Last line.\r\n";
	for (int round = 0; round < 3; ++round) {
		Transaction t = send_mail(c, test_sender, {"alice@test.example", "carol@test.example"},
		                          make_message("both " + std::to_string(round), body));
		INFO(log_tail(daemon) << "\n" << dovecot.log_text());
		REQUIRE(t.step == "END");
		CHECK(t.reply.code == 250);
	}
	RunResult r = store->inbox_and_first_message();
	REQUIRE(r.exit_code == 0);
	CHECK(contains(r.output, "exists 3"));
	CHECK(contains(r.output, "\r\n\r\n" + body));
	std::vector<std::string> files = maildir_files(daemon.maildir("carol"));
	REQUIRE(files.size() == 3);
	for (const std::string& f : files) CHECK(contains(read_file(f), "\r\n\r\n" + body));
}

TEST_CASE("lmtp: a recipient Dovecot refuses gets its own error; when all are refused, the 5xx") {
	auto store = started_dovecot();
	if (!store) return;
	DovecotServer& dovecot = *store->server;
	// The DSN for the refused recipient leaves through the queue: a sink
	// stands in for the sender's server.
	SmtpSink sink;
	std::string patch = lmtp_patch("inet:127.0.0.1:" + std::to_string(dovecot.lmtp_port()), 30, true,
	                               R"("queue": {"smarthost": "127.0.0.1:)" + std::to_string(sink.port()) +
	                                   R"(", "smarthost_tls": "none"})");
	auto started = start_as_nobody({.config_patch = patch});
	TernDaemon& daemon = *started;

	SmtpClient c = connect_and_ehlo(daemon);
	Transaction t = send_mail(c, test_sender, {"alice@test.example", "carol@test.example"},
	                          make_message("two recipients", "For both.\r\n"));
	INFO(log_tail(daemon) << "\n" << dovecot.log_text());
	REQUIRE(t.step == "END");
	// alice has it, so the message is accepted; carol's failure goes back
	// to the sender as a DSN, as for any partial failure.
	CHECK(t.reply.code == 250);
	CHECK(contains(store->inbox_count(), "exists 1"));
	REQUIRE(sink.wait_for_messages(1, 15000));
	SinkMessage dsn = sink.messages()[0];
	CHECK(dsn.mail_from == "");
	CHECK(dsn.rcpt_to == std::vector<std::string>{"bob@sender.example"});
	CHECK(contains(dsn.data, "Final-Recipient: rfc822;carol@test.example"));
	CHECK(contains(dsn.data, "Status: 5.1.1"));
	CHECK_FALSE(contains(dsn.data, "Final-Recipient: rfc822;alice@test.example"));

	// Only carol: Dovecot's refusal is the reply.
	t = send_mail(c, test_sender, {"carol@test.example"}, make_message("only carol", "Nobody home.\r\n"));
	REQUIRE(t.step == "END");
	CHECK(t.reply.code == 550);
	CHECK(t.reply.ecode == "5.1.1");
	CHECK(contains(t.reply.text, "carol@test.example"));
	CHECK(contains(store->inbox_count(), "exists 1"));
	CHECK(maildir_files(daemon.maildir("carol")).empty());
}

TEST_CASE("lmtp: a server that is down gets the client 451 4.3.0, and nothing is stored") {
	std::string target;
	SUBCASE("TCP port with nothing listening") { target = "inet:127.0.0.1:" + std::to_string(free_tcp_port()); }
	SUBCASE("unix socket that does not exist") { target = "unix:/nonexistent/tern-test/lmtp"; }
	TernDaemon daemon({.config_patch = lmtp_patch(target)});
	REQUIRE_RUNNING(daemon);
	SmtpClient c = connect_and_ehlo(daemon);
	Elapsed elapsed;
	Transaction t = send_mail(c, test_sender, {"alice@test.example", "carol@test.example"},
	                          make_message("server down", "Try later.\r\n"));
	INFO(log_tail(daemon));
	REQUIRE(t.step == "END");
	CHECK(t.reply.code == 451);
	CHECK(t.reply.ecode == "4.3.0");
	CHECK(elapsed.seconds() < 10);
	// The reply does not tell the world where the LMTP server is.
	CHECK_FALSE(contains(t.reply.raw, "LMTP"));
	CHECK(maildir_files(daemon.maildir("alice")).empty());
	CHECK(maildir_files(daemon.maildir("carol")).empty());
	CHECK(contains(daemon.log_text(), "lmtp delivery failed"));
	// The session goes on: the client may try again.
	CHECK(c.cmd("NOOP").code == 250);
}

TEST_CASE("lmtp: a server that accepts and never answers: the deadline gives 451 in bounded time") {
	// A listening socket that nobody accepts from: connections complete in
	// the kernel's backlog and then hear nothing.
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(fd >= 0);
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
	REQUIRE(listen(fd, 8) == 0);
	socklen_t len = sizeof addr;
	REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
	int port = ntohs(addr.sin_port);

	TernDaemon daemon({.config_patch = lmtp_patch("inet:127.0.0.1:" + std::to_string(port), 2)});
	REQUIRE_RUNNING(daemon);
	SmtpClient c = connect_and_ehlo(daemon);
	Elapsed elapsed;
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, make_message("stalled", "Waiting.\r\n"));
	double took = elapsed.seconds();
	INFO(log_tail(daemon));
	REQUIRE(t.step == "END");
	CHECK(t.reply.code == 451);
	CHECK(t.reply.ecode == "4.3.0");
	CHECK(took >= 1.5);  // the deadline, not a refusal
	CHECK(took < 10);
	CHECK(contains(daemon.log_text(), "timeout after 2s"));
	CHECK(maildir_files(daemon.maildir("alice")).empty());
	// Another client is served meanwhile and after: the loop never waited.
	SmtpClient other = connect_and_ehlo(daemon);
	CHECK(other.cmd("NOOP").code == 250);
	close(fd);
}

TEST_CASE("lmtp: submitted mail for a local account goes through the queue to LMTP; a server down means a retry") {
	auto store = started_dovecot();
	if (!store) return;
	DovecotServer& dovecot = *store->server;

	// First the LMTP server is unreachable; retries come every few seconds.
	int metrics_port = free_tcp_port();
	std::string patch = lmtp_patch("inet:127.0.0.1:" + std::to_string(free_tcp_port()), 30, true,
	                               submission_queue_extra(R"("retry_base_s": 1, "max_attempts": 20)") +
	                                   R"(, "metrics": {"listen": "127.0.0.1:)" + std::to_string(metrics_port) +
	                                   R"("})");
	auto started = start_as_nobody({.submission = true, .config_patch = patch}, "alice-secret");
	TernDaemon& daemon = *started;
	SmtpClient c = login_submission(daemon, "alice@test.example", "alice-secret");
	std::string message =
	    "From: <alice@test.example>\r\nTo: <alice@test.example>\r\nSubject: note to self\r\n\r\n"
	    ".dot line\r\nremember\r\n";
	Transaction t = send_mail(c, "alice@test.example", {"alice@test.example"}, message);
	INFO(log_tail(daemon) << "\n" << dovecot.log_text());
	REQUIRE(t.step == "END");
	REQUIRE(t.reply.code == 250);  // queued durably

	// The failed attempt leaves the record queued for a retry.
	REQUIRE(wait_for_log(daemon, "msg=\"delivery deferred\"", 10000));
	CHECK(contains(daemon.log_text(), "451 4.3.0"));
	CHECK(contains(store->inbox_count(), "exists 0"));

	// The server comes back (here: the config now names the running one);
	// the next retry delivers.
	std::string good = lmtp_patch("unix:" + dovecot.lmtp_socket(), 30, true);
	daemon.write_config(good);
	REQUIRE(daemon.signal(SIGHUP));
	REQUIRE(wait_for_log(daemon, "msg=\"delivered locally\"", 15000));
	RunResult r = store->inbox_and_first_message();
	INFO(r.output);
	CHECK(contains(r.output, "exists 1"));
	CHECK(contains(r.output, "Return-Path: <alice@test.example>\r\n"));
	CHECK(occurrences(r.output, "Return-Path:") == 1);
	CHECK(contains(r.output, "Subject: note to self\r\n"));
	CHECK(contains(r.output, "\r\n\r\n.dot line\r\nremember\r\n"));
	CHECK(maildir_files(daemon.maildir("alice")).empty());
	// Counted as the log names it: a local delivery, not one to another server.
	std::string page = get_metrics(metrics_port);
	CHECK(sample(page, "tern_queue_deliveries_total{result=\"local\"}") == 1);
	CHECK(sample(page, "tern_queue_deliveries_total{result=\"delivered\"}") <= 0);
}

TEST_CASE("lmtp: a DSN for a sender whose account takes its mail over LMTP goes to the LMTP server, not the Maildir") {
	auto store = started_dovecot();
	if (!store) return;
	DovecotServer& dovecot = *store->server;
	// The smarthost refuses the recipient: a failed DSN for alice.
	SmtpSink sink;
	SmtpSink::Replies refuse;
	refuse.rcpt = "550 5.1.1 no mailbox by that name";
	sink.set_replies(refuse);
	std::string patch = lmtp_patch(
	    "unix:" + dovecot.lmtp_socket(), 30, true,
	    submission_queue_extra(R"("smarthost": "127.0.0.1:)" + std::to_string(sink.port()) +
	                           R"(", "smarthost_tls": "none", "retry_base_s": 1, "max_attempts": 8)"));
	auto started = start_as_nobody({.submission = true, .config_patch = patch}, "alice-secret");
	TernDaemon& daemon = *started;
	SmtpClient c = login_submission(daemon, "alice@test.example", "alice-secret");
	std::string message =
	    "From: <alice@test.example>\r\nTo: <bob@remote.example>\r\nSubject: doomed\r\n"
	    "Message-Id: <lmtp-bounce-1@test.example>\r\n\r\nthis will bounce\r\n";
	Transaction t = send_mail(c, "alice@test.example", {"bob@remote.example"}, message);
	INFO(log_tail(daemon) << "\n" << dovecot.log_text());
	REQUIRE(t.step == "END");
	REQUIRE(t.reply.code == 250);

	REQUIRE(wait_for_log(daemon, "msg=\"failed dsn queued for lmtp\"", 15000));
	REQUIRE(wait_for_log(daemon, "msg=\"delivered locally\"", 15000));
	RunResult r = store->inbox_and_first_message();
	INFO(r.output);
	CHECK(contains(r.output, "exists 1"));
	CHECK(contains(r.output, "Subject: mail delivery failed"));
	CHECK(contains(r.output, "550 5.1.1 no mailbox by that name"));
	CHECK(contains(r.output, "<lmtp-bounce-1@test.example>"));
	// The notice came with the null reverse path (RFC 3464 2).
	CHECK(contains(r.output, "Return-Path: <>\r\n"));
	// Nothing in tern's own Maildir, nothing left queued.
	CHECK(maildir_files(daemon.maildir("alice")).empty());
	CHECK(sink.messages().empty());
}

namespace {

// A scripted LMTP server for one connection: answers the greeting, LHLO,
// MAIL, each RCPT and DATA with 2xx/354, reads the message to the final
// dot, then sends `after_dot` (its per-recipient replies) and closes.
class ScriptedLmtp {
public:
	// One connection per script, in order: each answers LHLO, MAIL and
	// RCPT with 250 and the final dot with its script.
	explicit ScriptedLmtp(std::vector<std::string> after_dot) : scripts_(std::move(after_dot)) {
		listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		sockaddr_in sin{};
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		bind(listen_fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
		listen(listen_fd_, 4);
		socklen_t len = sizeof sin;
		getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sin), &len);
		port_ = ntohs(sin.sin_port);
		thread_ = std::thread([this] {
			for (const std::string& script : scripts_)
				if (!serve(script)) return;
		});
	}
	~ScriptedLmtp() {
		shutdown(listen_fd_, SHUT_RDWR);
		close(listen_fd_);
		thread_.join();
	}
	int port() const { return port_; }
	// The message text of each transaction that reached its final dot.
	std::vector<std::string> messages() {
		std::lock_guard lock(mu_);
		return messages_;
	}
	// Each MAIL FROM line it was sent, in order.
	std::vector<std::string> mail_lines() {
		std::lock_guard lock(mu_);
		return mail_lines_;
	}

private:
	bool serve(const std::string& after_dot) {
		int fd = accept(listen_fd_, nullptr, nullptr);
		if (fd < 0) return false;
		auto say = [fd](const std::string& s) { (void)::send(fd, s.data(), s.size(), MSG_NOSIGNAL); };
		say("220 scripted LMTP\r\n");
		std::string in, text;
		bool in_data = false;
		char buf[4096];
		for (;;) {
			size_t eol;
			while ((eol = in.find("\r\n")) != std::string::npos) {
				std::string line = in.substr(0, eol);
				in.erase(0, eol + 2);
				if (in_data) {
					if (line == ".") {
						{
							std::lock_guard lock(mu_);
							messages_.push_back(text);
						}
						say(after_dot);
						close(fd);
						return true;
					}
					text += line + "\r\n";
					continue;
				}
				if (line.rfind("MAIL ", 0) == 0) {
					std::lock_guard lock(mu_);
					mail_lines_.push_back(line);
				}
				if (line.rfind("LHLO", 0) == 0) {
					say("250-scripted\r\n250 8BITMIME\r\n");
				} else if (line.rfind("DATA", 0) == 0) {
					in_data = true;
					say("354 go\r\n");
				} else if (line.rfind("QUIT", 0) == 0) {
					say("221 bye\r\n");
					close(fd);
					return true;
				} else {
					say("250 ok\r\n");
				}
			}
			ssize_t n = recv(fd, buf, sizeof buf, 0);
			if (n <= 0) break;
			in.append(buf, static_cast<size_t>(n));
		}
		close(fd);
		return true;
	}

	std::vector<std::string> scripts_;
	std::mutex mu_;
	std::vector<std::string> messages_;
	std::vector<std::string> mail_lines_;
	int listen_fd_ = -1;
	int port_ = 0;
	std::thread thread_;
};

// Both accounts' mail to the scripted server (timeout 5 s), the queue's
// mail (`queue_keys` first) to the sink.
std::string lmtp_and_sink_patch(const ScriptedLmtp& lmtp, const SmtpSink& sink, const std::string& queue_keys = "") {
	return lmtp_patch("inet:127.0.0.1:" + std::to_string(lmtp.port()), 5, false,
	                  R"("queue": {)" + queue_keys + R"("smarthost": "127.0.0.1:)" + std::to_string(sink.port()) +
	                      R"(", "smarthost_tls": "none"})");
}

// A message to alice and carol on port 25, up to its final reply.
Transaction send_to_alice_and_carol(TernDaemon& daemon, const std::string& subject) {
	SmtpClient c = connect_and_ehlo(daemon);
	Transaction t = send_mail(c, test_sender, {"alice@test.example", "carol@test.example"},
	                          make_message(subject, "Hello both.\r\n"));
	INFO(log_tail(daemon));
	REQUIRE(t.step == "END");
	return t;
}

}  // namespace

TEST_CASE("lmtp: the replies after the final dot are per recipient; a refused one gets a DSN") {
	ScriptedLmtp lmtp({"250 2.0.0 <alice@test.example> saved\r\n550 5.1.1 <carol@test.example> no such user\r\n"});
	SmtpSink sink;
	TernDaemon daemon({.config_patch = lmtp_and_sink_patch(lmtp, sink)});
	REQUIRE_RUNNING(daemon);
	Transaction t = send_to_alice_and_carol(daemon, "per recipient");
	// alice's copy is the LMTP server's now: the message is accepted, and
	// carol's refusal goes back to the sender.
	CHECK(t.reply.code == 250);
	REQUIRE(sink.wait_for_messages(1, 15000));
	SinkMessage dsn = sink.messages()[0];
	CHECK(contains(dsn.data, "Final-Recipient: rfc822;carol@test.example"));
	CHECK(contains(dsn.data, "Status: 5.1.1"));
	CHECK_FALSE(contains(dsn.data, "Final-Recipient: rfc822;alice@test.example"));
}

// The retried copy that then fails for good: the notice goes back to the
// port-25 sender through the queue, not into a mailbox here.
TEST_CASE("lmtp: a retried copy the LMTP server then refuses is reported to the sender") {
	ScriptedLmtp lmtp({"250 2.0.0 <alice@test.example> saved\r\n452 4.2.2 <carol@test.example> over quota\r\n",
	                   "550 5.2.1 <carol@test.example> mailbox disabled\r\n"});
	SmtpSink sink;
	TernDaemon daemon({.config_patch = lmtp_and_sink_patch(lmtp, sink, R"("retry_base_s": 1, )")});
	REQUIRE_RUNNING(daemon);
	Transaction t = send_to_alice_and_carol(daemon, "refused later");
	INFO(log_tail(daemon));
	CHECK(t.reply.code == 250);
	REQUIRE(sink.wait_for_messages(1, 15000));
	SinkMessage dsn = sink.messages()[0];
	CHECK(dsn.mail_from == "");
	CHECK(dsn.rcpt_to == std::vector<std::string>{"bob@sender.example"});
	CHECK(contains(dsn.data, "Final-Recipient: rfc822;carol@test.example"));
	CHECK(contains(dsn.data, "Action: failed"));
	CHECK(contains(dsn.data, "Status: 5.2.1"));
	CHECK(contains(daemon.log_text(), "failed dsn queued for the sender"));
}

// A copy the LMTP server could not take for the moment, while another
// recipient's landed: the client gets 250 and will not try again, so the
// queue does, as Postfix keeps such a recipient queued. It was bounced to
// the sender at once (a DSN with a 4.x.x status), the copy never delivered.
TEST_CASE("lmtp: a recipient the LMTP server fails for the moment, beside one it took, is retried from the queue") {
	std::string after_dot;
	SUBCASE("a 4xx for the second recipient after the dot") {
		after_dot = "250 2.0.0 <alice@test.example> saved\r\n452 4.2.2 <carol@test.example> over quota\r\n";
	}
	SUBCASE("the server closes after the first reply") { after_dot = "250 2.0.0 <alice@test.example> saved\r\n"; }
	// The second connection is the queue's retry, which carol's copy passes.
	ScriptedLmtp lmtp({after_dot, "250 2.0.0 <carol@test.example> saved\r\n"});
	SmtpSink sink;
	TernDaemon daemon({.config_patch = lmtp_and_sink_patch(lmtp, sink, R"("retry_base_s": 1, )")});
	REQUIRE_RUNNING(daemon);
	Transaction t = send_to_alice_and_carol(daemon, "retried");
	INFO(log_tail(daemon));
	CHECK(t.reply.code == 250);
	CHECK(contains(daemon.log_text(), "lmtp delivery queued for a retry"));
	REQUIRE(wait_for_log(daemon, "msg=\"delivered locally\"", 15000));
	std::vector<std::string> received = lmtp.messages();
	REQUIRE(received.size() == 2);
	// The retried copy: the fields of carol's own transaction, then the message.
	CHECK(contains(received[1], "X-Tern-Reason: "));
	CHECK(contains(received[1], "for <carol@test.example>;"));
	CHECK(contains(received[1], "Subject: retried\r\n"));
	CHECK(contains(received[1], "\r\n\r\nHello both.\r\n"));
	CHECK_FALSE(contains(received[1], "Return-Path:"));
	// No notice of a failure went to the sender.
	usleep(500000);
	CHECK(sink.messages().empty());
	CHECK(maildir_files(daemon.maildir("carol")).empty());
}

// RFC 6152 2: a message with 8-bit bytes goes on with BODY=8BITMIME, also
// when its client did not say BODY=8BITMIME (port 25 takes 8-bit data
// without it, as the model does): to the LMTP server at once, and on the
// queue's retry (the queue's record says 8bit, as the model's takes it
// from the data).
TEST_CASE("lmtp: 8-bit data sent without BODY=8BITMIME goes to the LMTP server, and its retry, as 8BITMIME") {
	ScriptedLmtp lmtp({"250 2.0.0 <alice@test.example> saved\r\n452 4.2.2 <carol@test.example> over quota\r\n",
	                   "250 2.0.0 <carol@test.example> saved\r\n"});
	SmtpSink sink;
	TernDaemon daemon({.config_patch = lmtp_and_sink_patch(lmtp, sink, R"("retry_base_s": 1, )")});
	REQUIRE_RUNNING(daemon);
	SmtpClient c = connect_and_ehlo(daemon);
	Transaction t = send_mail(c, test_sender, {"alice@test.example", "carol@test.example"},
	                          make_message("eight bit",
	                                       "Gr\xc3\xbc\xc3\x9f"
	                                       "e.\r\n"));
	INFO(log_tail(daemon));
	REQUIRE(t.step == "END");
	CHECK(t.reply.code == 250);
	REQUIRE(wait_for_log(daemon, "msg=\"delivered locally\"", 15000));
	std::vector<std::string> mails = lmtp.mail_lines();
	REQUIRE(mails.size() == 2);
	INFO(mails[0] << "\n" << mails[1]);
	CHECK(contains(mails[0], " BODY=8BITMIME"));
	CHECK(contains(mails[1], " BODY=8BITMIME"));
}
