// The delivery decision learned from the mailbox (doc/behaviour.md §9):
// junk marks a user sets through a real Dovecot refuse the sender's next
// message into the Rejects mailbox; mail the account sent makes a sender
// known; an unknown sender waits the first-time delay; delivery-rate limits
// per client network.
#include <unistd.h>

#include <chrono>
#include <thread>

#include "bb.h"
#include "helpers/dovecot.h"
#include "helpers/smtp_sink.h"
#include "helpers/tls_tools.h"

namespace {

size_t count_of(const std::string& text, const std::string& needle) {
	size_t n = 0;
	for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
	return n;
}

// Waits until the daemon's Maildir scanner logged `passes` passes that
// changed a junk mark.
bool wait_for_mark_changes(TernDaemon& d, size_t passes) {
	for (int i = 0; i < 100; ++i) {
		if (count_of(d.log_text(), "marks_changed=1") >= passes) return true;
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	}
	return false;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
	return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// sender.example publishes DMARC, so bob's From validates (aligned SPF
// pass) and what the user said about him decides on its own.
void add_dmarc(TernDaemon& d) { d.dns().add("_dmarc.sender.example", "TXT", "v=DMARC1; p=none"); }

}  // namespace

TEST_CASE(
    "history: a sender marked $Junk over IMAP is refused into Rejects; marked not junk, the retry is "
    "accepted and leaves no Rejects copy") {
	if (geteuid() != 0 || !DovecotServer::available()) {
		MESSAGE("skipped: needs root and Debian's dovecot-imapd (contrib/debian-packages.txt)");
		return;
	}
	TernDaemon daemon({.config_patch = R"({"user": "nobody", "message_history": {"scan_interval_s": 1},
	                                       "listeners": {"test": {"smtp": {"first_time_sender_delay_ms": 1500}}}})",
	                   .start = false});
	daemon.write_config();
	add_dmarc(daemon);
	std::string maildir = daemon.maildir("alice");
	chown_tree_to_nobody(daemon.dir());
	REQUIRE_MESSAGE(daemon.start(), daemon.error());

	// Nothing is known about bob yet: his first message waits the delay.
	SmtpClient c = connect_and_ehlo(daemon);
	auto start = std::chrono::steady_clock::now();
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, make_message("first from bob", "Hello.\r\n"));
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(seconds_since(start) >= 1.5);
	REQUIRE(wait_for_maildir(maildir, 1).size() == 1);
	CHECK(starts_with(read_file(wait_for_maildir(maildir, 1)[0]), "X-Tern-Reason: no-bad-signals\r\n"));

	DovecotServer dovecot(maildir, "alice", "imap-secret");
	REQUIRE_MESSAGE(dovecot.start(), dovecot.error());
	RunResult r = dovecot.imap("imap.select('INBOX')\nprint('store', imap.store('1', '+FLAGS', '($Junk)')[0])\n");
	INFO(r.output << "\n" << dovecot.log_text());
	REQUIRE(contains(r.output, "store OK"));
	REQUIRE_MESSAGE(wait_for_mark_changes(daemon, 1), daemon.log_text());

	// Bob's next message: refused, vaguely and temporarily, and kept in
	// Rejects flagged Seen.
	std::string second = make_message("second from bob", "Buy now.\r\n");
	c = connect_and_ehlo(daemon);
	start = std::chrono::steady_clock::now();
	t = send_mail(c, test_sender, {"alice@test.example"}, second);
	CHECK(t.reply.plain() == "451 4.3.0 error processing");
	CHECK(seconds_since(start) < 1.5);  // a refusal does not wait the first-time delay
	std::string rejects = maildir + "/.Rejects";
	auto kept = maildir_names(rejects + "/cur");
	REQUIRE(kept.size() == 1);
	CHECK(ends_with(kept[0], ":2,S"));
	CHECK(file_exists(rejects + "/maildirfolder"));
	std::string kept_text = read_file(rejects + "/cur/" + kept[0]);
	CHECK(starts_with(kept_text, "X-Tern-Reason: msgfromfull\r\n"));
	CHECK(contains(kept_text, "Subject: second from bob"));
	CHECK(contains(daemon.log_text(), "reason=msgfromfull"));
	// The same message again is not kept twice.
	c = connect_and_ehlo(daemon);
	t = send_mail(c, test_sender, {"alice@test.example"}, second);
	CHECK(t.reply.code == 451);
	CHECK(maildir_names(rejects + "/cur").size() == 1);

	// The user changes their mind: bob is not junk after all. The retried
	// message is delivered at once and its Rejects copy goes.
	r = dovecot.imap(
	    "imap.select('INBOX')\n"
	    "print('unjunk', imap.store('1', '-FLAGS', '($Junk)')[0])\n"
	    "print('notjunk', imap.store('1', '+FLAGS', '($NotJunk)')[0])\n");
	REQUIRE(contains(r.output, "notjunk OK"));
	REQUIRE_MESSAGE(wait_for_mark_changes(daemon, 2), daemon.log_text());
	c = connect_and_ehlo(daemon);
	start = std::chrono::steady_clock::now();
	t = send_mail(c, test_sender, {"alice@test.example"}, second);
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(seconds_since(start) < 1.5);
	CHECK(maildir_names(rejects + "/cur").empty());
	auto inbox = wait_for_maildir(maildir, 2);
	CHECK(maildir_names(maildir + "/new").size() + maildir_names(maildir + "/cur").size() == 2);
}

TEST_CASE("history: a sender the account wrote to through submission is accepted without the first-time delay") {
	SmtpSink sink;
	TernDaemon d({.submission = true,
	              .config_patch = R"({"listeners": {"test": {"submission": {"require_starttls": false},
	                                                         "smtp": {"first_time_sender_delay_ms": 20000}}},
	                                  "queue": {"smarthost": "127.0.0.1:)" +
	                  std::to_string(sink.port()) + R"(", "smarthost_tls": "none"}})",
	              .start = false});
	d.write_config();
	std::string out;
	REQUIRE_MESSAGE(set_password(d, "alice", "submission secret 42", &out), out);
	REQUIRE_MESSAGE(d.start(), d.error());

	SmtpClient sub;
	REQUIRE(sub.connect("127.0.0.1", d.submission_port()));
	REQUIRE(sub.greet_and_ehlo());
	REQUIRE(sub.cmd("AUTH PLAIN " + plain_response("alice@test.example", "submission secret 42")).code == 235);
	Transaction t = send_mail(sub, "alice@test.example", {"dave@sender.example"},
	                          make_message("hello dave", "Hi.\r\n", "alice@test.example", "dave@sender.example"));
	REQUIRE(t.reply.code == 250);

	// dave answers: alice wrote to him, so he is known (msgtofull).
	SmtpClient c = connect_and_ehlo(d);
	auto start = std::chrono::steady_clock::now();
	t = send_mail(c, "dave@sender.example", {"alice@test.example"},
	              make_message("re: hello dave", "Hi Alice.\r\n", "dave@sender.example"));
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	CHECK(seconds_since(start) < 10);
	auto files = wait_for_maildir(d.maildir(), 1);
	REQUIRE(files.size() == 1);
	CHECK(starts_with(read_file(files[0]), "X-Tern-Reason: msgtofull\r\n"));
	CHECK(contains(d.log_text(), "reason=msgtofull"));
}

TEST_CASE("history: a delivery-rate limit refuses 452 4.2.2 from one address and not from another") {
	TernDaemon d({.config_patch = R"({"listeners": {"test": {"ips": ["127.0.0.1", "::1"]}},
	                                  "accounts": {"alice": {"delivery_rate_limits":
	                                      {"messages_per_minute": [2, 100, 100]}}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	for (int i = 0; i < 2; ++i) {
		Transaction t = send_mail(c, test_sender, {"alice@test.example"},
		                          make_message("m" + std::to_string(i)));
		REQUIRE(t.reply.code == 250);
	}
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, make_message("third"));
	CHECK(t.reply.plain() == "452 4.2.2 more than 2 messages in past 1m0s from your ip/network");
	CHECK(contains(d.log_text(), "reason=rate-limited"));
	CHECK(wait_for_maildir(d.maildir(), 2).size() == 2);
	// The limit is there to stop a mailbox filling: as in the model, the
	// refused message is not kept in Rejects either (the copies are on disk
	// before the reply).
	CHECK(maildir_names(d.maildir() + "/.Rejects/cur").empty());

	// Another /32 (here IPv6 ::1) is not limited by 127.0.0.1's count.
	SmtpClient c6 = connect_smtp(d, "::1");
	REQUIRE(c6.connected());
	REQUIRE(c6.read_reply().code == 220);
	REQUIRE(c6.cmd("EHLO " + test_ehlo).code == 250);
	t = send_mail(c6, test_sender, {"alice@test.example"}, make_message("from v6"));
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
}

// The model checks the limits per recipient, each after the copy of the
// one before it was stored: a message to two addresses of the account may
// take the last place with its first copy and be refused for its second
// (which then gets a DSN, doc/behaviour.md §13).
TEST_CASE("history: the delivery-rate limit counts a message's earlier copies to the same account") {
	SmtpSink sink;
	TernDaemon d({.config_patch = R"({"queue": {"smarthost": "127.0.0.1:)" + std::to_string(sink.port()) +
	                  R"(", "smarthost_tls": "none"},
	                  "accounts": {"alice": {"destinations": {"alice@test.example": {"mailbox": "INBOX"},
	                                                          "al2@test.example": {"mailbox": "INBOX"}},
	                                         "delivery_rate_limits": {"messages_per_minute": [2, 100, 100]}}}})"});
	REQUIRE_RUNNING(d);
	SmtpClient c = connect_and_ehlo(d);
	REQUIRE(send_mail(c, test_sender, {"alice@test.example"}, make_message("first")).reply.code == 250);
	Transaction t = send_mail(c, test_sender, {"alice@test.example", "al2@test.example"}, make_message("both"));
	CHECK(t.reply.plain() == "250 2.2.0 it is done");
	// Two copies in all: the second message's second copy would be the third.
	auto files = wait_for_maildir(d.maildir(), 2);
	CHECK(files.size() == 2);
	usleep(300000);
	CHECK(maildir_files(d.maildir() + "/new", "").size() == 2);
	// The refused recipient gets its DSN, with the limit's reply.
	REQUIRE(sink.wait_for_messages(1));
	std::string dsn = sink.messages()[0].data;
	CHECK_MESSAGE(contains(dsn, "al2@test.example"), dsn);
	CHECK_MESSAGE(contains(dsn, "more than 2 messages in past 1m0s from your ip/network"), dsn);
}
