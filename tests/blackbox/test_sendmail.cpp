// sendmail.tern and mailq against a running ternd (man/sendmail.tern.8):
// a local user (nobody; the tests run as root and drop to it in a forked
// child) hands messages over <data_dir>/public/sendmail.sock; they reach
// the account's Maildir and the smarthost (the SMTP sink) through the
// queue. Also -i, -f rules, a stopped ternd and the queue listing.
#include "bb.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "helpers/smtp_sink.h"
#include "ternctl_run.h"

namespace {

// The tests run sendmail.tern as an unprivileged user.
std::string sendmail_path() { return reachable_program("sendmail.tern"); }

struct LocalUser {
	uid_t uid = 0;
	gid_t gid = 0;
	bool found = false;
};

LocalUser nobody() {
	LocalUser u;
	if (passwd* pw = getpwnam("nobody")) {
		u.uid = pw->pw_uid;
		u.gid = pw->pw_gid;
		u.found = true;
	}
	return u;
}

// Runs argv as `user` (fork, drop to its uid/gid, exec) with the file or
// directory `in_path` on stdin; stdout and stderr apart, ≤ timeout_ms.
ProgramResult run_as_reading(const LocalUser& user, const std::vector<std::string>& argv, const std::string& in_path,
                             int timeout_ms = 20000) {
	ProgramResult result;
	std::string dir = make_temp_dir("tern-sm-");
	std::string out_path = dir + "/stdout", err_path = dir + "/stderr";
	pid_t pid = fork();
	if (pid == 0) {
		int in = open(in_path.c_str(), O_RDONLY);
		int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (in < 0 || out < 0 || err < 0) _exit(120);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		if (setgroups(0, nullptr) != 0 || setgid(user.gid) != 0 || setuid(user.uid) != 0) _exit(121);
		std::vector<char*> args;
		for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
		args.push_back(nullptr);
		execv(args[0], args.data());
		_exit(122);
	}
	int status = 0;
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) break;
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			status = -1;
			break;
		}
		usleep(10000);
	}
	if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
	result.out = read_file(out_path);
	result.err = read_file(err_path);
	remove_tree(dir);
	return result;
}

// The same with stdin_data on stdin.
ProgramResult run_as(const LocalUser& user, const std::vector<std::string>& argv, const std::string& stdin_data,
                     int timeout_ms = 20000) {
	std::string dir = make_temp_dir("tern-sm-in-");
	write_file(dir + "/stdin", stdin_data);
	ProgramResult result = run_as_reading(user, argv, dir + "/stdin", timeout_ms);
	remove_tree(dir);
	return result;
}

// The config patch of these tests: the sink as smarthost (no TLS), slow
// retries so a failing message stays listed, and an account named like
// the local user when `nobody_account`.
// `extra`: more members of the top-level object, e.g. R"("user": "nobody")".
std::string sendmail_patch(const SmtpSink& sink, bool nobody_account = false, const std::string& extra = "") {
	std::string patch = R"({"queue": {"smarthost": "127.0.0.1:)" + std::to_string(sink.port()) +
	    R"(", "smarthost_tls": "none", "retry_base_s": 600, "max_attempts": 3})";
	if (!extra.empty()) patch += ", " + extra;
	if (nobody_account)
		patch += R"(, "accounts": {"nobody": {"domain": "test.example",
		            "destinations": {"nobody@test.example": {"mailbox": "INBOX"}}}})";
	return patch + "}";
}

// Opens the test's directories and config to other users, as an
// installation must (data_dir mode 0711 or more).
void open_up(const TernDaemon& d) {
	chmod(d.dir().c_str(), 0711);
	chmod(d.data_dir().c_str(), 0711);
	chmod(d.config_path().c_str(), 0644);
}

// Starts ternd and waits (≤ 5 s) until its local submission socket takes
// connections: it is bound just after the SMTP ports start() waits for.
void start(TernDaemon& d, const std::string& patch) {
	d.write_config(patch);
	open_up(d);
	REQUIRE_MESSAGE(d.start(), d.error());
	open_up(d);
	REQUIRE_MESSAGE(wait_for_unix_socket(d.data_dir() + "/public/sendmail.sock"), log_tail(d));
}

DaemonOptions not_started() {
	DaemonOptions o;
	o.start = false;
	return o;
}

std::string header_section(const std::string& message) { return message.substr(0, message.find("\r\n\r\n") + 2); }

bool has_field(const std::string& message, const std::string& name) {
	std::string h = "\r\n" + header_section(message);
	return h.find("\r\n" + name + ":") != std::string::npos;
}

// sendmail.tern -C <d's config> args...
std::vector<std::string> sendmail_args(const TernDaemon& d, std::vector<std::string> args) {
	args.insert(args.begin(), {sendmail_path(), "-C", d.config_path()});
	return args;
}

// A sink as smarthost and a ternd with its socket ready.
struct Running {
	SmtpSink sink;
	TernDaemon d{not_started()};
	explicit Running(bool nobody_account = false, const std::string& extra = "") {
		start(d, sendmail_patch(sink, nobody_account, extra));
	}
};

// The one message in alice's INBOX (waits for it).
std::string only_message(const TernDaemon& d) {
	auto files = wait_for_maildir(d.maildir("alice"), 1, 10000);
	REQUIRE(files.size() == 1);
	return read_file(files[0]);
}

#define SKIP_UNLESS_ROOT(user)                                                                                         \
	if (geteuid() != 0 || !(user).found) {                                                                         \
		MESSAGE("skipped: needs root and a user \"nobody\" to run sendmail.tern as non-root");                 \
		return;                                                                                                \
	}

}  // namespace

TEST_CASE("sendmail: -t from a local user delivers to the Maildir and the smarthost, Bcc hidden") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	Running t;
	TernDaemon& d = t.d;
	SmtpSink& sink = t.sink;

	std::string message =
	    "To: Alice <alice@test.example>\nCc: carol@remote.example\nBcc: dave@remote.example, "
	    "alice@TEST.example\nSubject: nightly report\n\nall is well\n";
	ProgramResult r = run_as(user, sendmail_args(d, {"-t", "-FReport Job"}), message);
	INFO(r.both() << log_tail(d));
	REQUIRE(r.exit_code == 0);
	CHECK(r.err == "");

	// Local: through the queue into alice's INBOX, with the fields tern adds.
	std::string local = only_message(d);
	CHECK(has_field(local, "Date"));
	CHECK(has_field(local, "Message-Id"));
	CHECK(local.find("From: \"Report Job\" <nobody@mx.test.example>\r\n") != std::string::npos);
	CHECK(local.find("Received: by mx.test.example (tern sendmail, from userid " + std::to_string(user.uid) +
	                 ")") != std::string::npos);
	CHECK_FALSE(has_field(local, "Bcc"));
	CHECK(local.find("dave@remote.example") == std::string::npos);
	CHECK(local.find("\r\n\r\nall is well\r\n") != std::string::npos);

	// Remote: both the Cc and the Bcc recipient, from the local user.
	REQUIRE(sink.wait_for_messages(1, 10000));
	std::set<std::string> remote;
	for (int i = 0; i < 100 && remote.size() < 2; ++i) {
		remote.clear();
		for (const auto& m : sink.messages()) {
			CHECK(m.mail_from == "nobody@mx.test.example");
			CHECK_FALSE(has_field(m.data, "Bcc"));
			CHECK(has_field(m.data, "Message-Id"));
			remote.insert(m.rcpt_to.begin(), m.rcpt_to.end());
		}
		if (remote.size() < 2) usleep(100000);
	}
	CHECK(remote == std::set<std::string>{"carol@remote.example", "dave@remote.example"});
	// alice is named in To and in Bcc: one copy (the remote ones went
	// through the same queue after hers).
	CHECK(wait_for_maildir(d.maildir("alice"), 1).size() == 1);
}

TEST_CASE("sendmail: cron's way of calling it works (unqualified From, ignored options)") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	Running t;
	TernDaemon& d = t.d;
	SmtpSink& sink = t.sink;
	// As Debian's cron runs it for a job's output, plus a Bcc that must
	// not show even without -t.
	std::string message =
	    "From: root (Cron Daemon)\nTo: alice@test.example\nBcc: carol@remote.example\n"
	    "Subject: Cron <root@host> run-parts /etc/cron.daily\n\noutput of the job\n";
	ProgramResult r = run_program(
	    sendmail_args(d, {"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "alice@test.example"}), message);
	INFO(r.both() << log_tail(d));
	REQUIRE(r.exit_code == 0);
	std::string text = only_message(d);
	CHECK(text.find("\r\nFrom: root@mx.test.example (Cron Daemon)\r\n") != std::string::npos);
	CHECK(text.find("Return-Path: <root@mx.test.example>") != std::string::npos);
	CHECK_FALSE(has_field(text, "Bcc"));
	CHECK(text.find("\r\n\r\noutput of the job\r\n") != std::string::npos);
	usleep(300000);
	CHECK(sink.messages().empty());  // Bcc without -t names no recipient
}

TEST_CASE("sendmail: header fields that run straight into the text are sent, the text as body") {
	Running t;
	// printf 'Subject: x\nbody' from a script: no empty line after the field.
	ProgramResult r = run_program(sendmail_args(t.d, {"-i", "alice@test.example"}),
	                              "Subject: h1\nThis is the body, no blank line before.\nmore\n");
	INFO(r.both() << log_tail(t.d));
	REQUIRE(r.exit_code == 0);
	std::string text = only_message(t.d);
	CHECK(text.find("\r\nSubject: h1\r\n") != std::string::npos);
	CHECK(text.find("\r\n\r\nThis is the body, no blank line before.\r\nmore\r\n") != std::string::npos);
}

TEST_CASE("sendmail -t: a resent message goes to its Resent- recipients, Resent-Bcc hidden") {
	Running t;
	ProgramResult r = run_program(sendmail_args(t.d, {"-t", "-i"}),
	                              "To: carol@remote.example\nResent-From: root\nResent-To: alice@test.example\n"
	                              "Resent-Bcc: dave@remote.example\nSubject: resent\n\nbody\n");
	INFO(r.both() << log_tail(t.d));
	REQUIRE(r.exit_code == 0);
	std::string text = only_message(t.d);
	CHECK(text.find("\r\nResent-From: root@mx.test.example\r\n") != std::string::npos);
	CHECK_FALSE(has_field(text, "Resent-Bcc"));
	REQUIRE(t.sink.wait_for_messages(1, 10000));
	usleep(300000);
	auto sent = t.sink.messages();
	REQUIRE(sent.size() == 1);  // nothing for carol, the original recipient
	CHECK(sent[0].rcpt_to == std::vector<std::string>{"dave@remote.example"});
	CHECK(sent[0].data.find("Resent-Bcc") == std::string::npos);
}

TEST_CASE("sendmail: cron's mail for root reaches the postmaster, not the host name's MX") {
	if (geteuid() != 0) {
		MESSAGE("skipped: needs root (cron's jobs of root)");
		return;
	}
	Running t;
	// The host name (mx.test.example) is not a hosted domain: root@ it
	// went to the smarthost, to be refused there after sendmail had
	// exited 0. alice is the postmaster of the test config.
	ProgramResult r = run_program(sendmail_args(t.d, {"-i", "root"}),
	                              "From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> backup\n\ndone\n");
	INFO(r.both() << log_tail(t.d));
	REQUIRE(r.exit_code == 0);
	std::string text = only_message(t.d);
	CHECK(text.find("\tfor <postmaster@mx.test.example>;") != std::string::npos);
	CHECK(text.find("\r\nTo: root@mx.test.example\r\n") !=
	      std::string::npos);  // the header as cron wrote it, qualified
	usleep(300000);
	CHECK(t.sink.messages().empty());
}

TEST_CASE("sendmail: a full name beyond ASCII becomes encoded words; one over 256 bytes is refused") {
	if (geteuid() != 0) {
		MESSAGE("skipped: needs root");
		return;
	}
	Running t;
	ProgramResult r = run_program(sendmail_args(t.d, {"-F\xc3\x89quipe de nuit", "alice@test.example"}),
	                              "Subject: report\n\nok\n");
	INFO(r.both() << log_tail(t.d));
	REQUIRE(r.exit_code == 0);
	CHECK(only_message(t.d).find("\r\nFrom: =?UTF-8?B?w4lxdWlwZSBkZSBudWl0?=\r\n <root@mx.test.example>\r\n") !=
	      std::string::npos);
	ProgramResult long_name = run_program(sendmail_args(t.d, {"-F" + std::string(300, 'n'), "alice@test.example"}),
	                                      "x\n");
	CHECK(long_name.exit_code == 64);  // EX_USAGE
	CHECK(long_name.err.find("full name (-F) longer than 256 bytes") != std::string::npos);
}

TEST_CASE("sendmail: an account user's mail is DKIM-signed, the From tern adds included") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	TernDaemon key_dir(not_started());  // never started: a temp dir made before the config, removed at the end
	std::string key_file = key_dir.dir() + "/s1.pem";
	ProgramResult key = run_ternctl({"dkim", "genkey", "ed25519", "--out", key_file});
	REQUIRE_MESSAGE(key.exit_code == 0, key.both());
	Running t(true,
	          R"("domains": {"test.example": {"dkim": {"selectors": {"s1": {"private_key_file": ")" + key_file +
	              R"("}}, "sign": ["s1"]}}})");
	ProgramResult r = run_as(user, sendmail_args(t.d, {"-t"}),
	                         "To: carol@remote.example\nSubject: signed\n\nbody\n");
	REQUIRE_MESSAGE(r.exit_code == 0, r.both());
	REQUIRE_MESSAGE(t.sink.wait_for_messages(1, 10000), log_tail(t.d));
	SinkMessage m = t.sink.messages()[0];
	CHECK(m.mail_from == "nobody@test.example");  // the account's address, not nobody@hostname
	CHECK(m.data.find("\r\nFrom: <nobody@test.example>\r\n") != std::string::npos);

	t.d.dns().add("s1._domainkey.test.example", "TXT", key.out.substr(0, key.out.find('\n')));
	std::string path = key_dir.dir() + "/received.eml";
	write_file(path, m.data);
	ProgramResult v = run_ternctl({"--dns", t.d.dns().address(), "dkim", "verify", path});
	INFO(m.data);
	CHECK(v.exit_code == 0);
	CHECK(v.out.starts_with("pass d=test.example s=s1 "));
	// Changing the From tern added breaks the signature: it was signed.
	std::string changed = m.data;
	changed.replace(changed.find("From: <nobody@"), 14, "From: <nobodx@");
	write_file(path, changed);
	v = run_ternctl({"--dns", t.d.dns().address(), "dkim", "verify", path});
	CHECK(v.out.starts_with("fail d=test.example s=s1 "));
}

TEST_CASE("sendmail: a lone dot ends the message unless -i") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	Running t;
	TernDaemon& d = t.d;
	std::string message = "Subject: dots\n\nfirst\n.\nsecond\n";

	ProgramResult r1 = run_as(user, sendmail_args(d, {"alice@test.example"}), message);
	REQUIRE_MESSAGE(r1.exit_code == 0, r1.both());
	auto files = wait_for_maildir(d.maildir("alice"), 1, 10000);
	REQUIRE(files.size() == 1);
	std::string cut = read_file(files[0]);
	CHECK(cut.find("\r\n\r\nfirst\r\n") != std::string::npos);
	CHECK(cut.find("second") == std::string::npos);

	ProgramResult r2 = run_as(user, sendmail_args(d, {"-oi", "alice@test.example"}), message);
	REQUIRE_MESSAGE(r2.exit_code == 0, r2.both());
	files = wait_for_maildir(d.maildir("alice"), 2, 10000);
	REQUIRE(files.size() == 2);
	std::string whole = read_file(files[0]) == cut ? read_file(files[1]) : read_file(files[0]);
	CHECK(whole.find("\r\n\r\nfirst\r\n.\r\nsecond\r\n") != std::string::npos);

	// A text without a header becomes the body of a message tern completes.
	ProgramResult r4 = run_as(user, sendmail_args(d, {"alice@test.example"}), "just text\n");
	REQUIRE_MESSAGE(r4.exit_code == 0, r4.both());
	files = wait_for_maildir(d.maildir("alice"), 3, 10000);
	REQUIRE(files.size() == 3);
	bool found = false;
	for (const auto& f : files) {
		std::string text = read_file(f);
		if (text.find("\r\n\r\njust text\r\n") != std::string::npos) found = has_field(text, "From");
	}
	CHECK(found);
}

TEST_CASE("sendmail: standard input that cannot be read sends nothing and exits 74") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	Running t;
	TernDaemon& d = t.d;
	// A directory on stdin: every read(2) fails with EISDIR.
	std::string dir = make_temp_dir("tern-sm-dir-");
	chmod(dir.c_str(), 0755);
	ProgramResult r = run_as_reading(user, sendmail_args(d, {"alice@test.example"}), dir);
	CHECK_MESSAGE(r.exit_code == 74, r.both());  // EX_IOERR
	CHECK_MESSAGE(r.err.find("reading the message") != std::string::npos, r.both());
	ProgramResult bs = run_as_reading(user, sendmail_args(d, {"-bs"}), dir);
	CHECK_MESSAGE(bs.exit_code == 74, bs.both());
	remove_tree(dir);
	// Nothing was handed over: a message sent afterwards is the only one.
	ProgramResult ok = run_as(user, sendmail_args(d, {"alice@test.example"}), "Subject: after\n\nbody\n");
	REQUIRE_MESSAGE(ok.exit_code == 0, ok.both());
	CHECK(only_message(d).find("Subject: after") != std::string::npos);
}

TEST_CASE("sendmail: -f and From must belong to a non-root user's account; root may use any") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	Running t(true);
	TernDaemon& d = t.d;
	SmtpSink& sink = t.sink;
	std::string message = "To: carol@remote.example\nSubject: s\n\nbody\n";

	ProgramResult foreign = run_as(user, sendmail_args(d, {"-f", "alice@test.example", "carol@remote.example"}),
	                               message);
	CHECK(foreign.exit_code == 77);  // EX_NOPERM
	CHECK(foreign.err.find("does not belong to user nobody") != std::string::npos);

	ProgramResult from_header = run_as(user, sendmail_args(d, {"carol@remote.example"}),
	                                   "From: alice@test.example\n" + message);
	CHECK(from_header.exit_code == 77);
	CHECK(from_header.err.find("must match authenticated user") != std::string::npos);

	ProgramResult own = run_as(user, sendmail_args(d, {"-f", "nobody@test.example", "carol@remote.example"}),
	                           message);
	REQUIRE_MESSAGE(own.exit_code == 0, own.both());
	REQUIRE(sink.wait_for_messages(1, 10000));

	ProgramResult root = run_program(sendmail_args(d, {"-f", "boss@elsewhere.example", "carol@remote.example"}),
	                                 message);
	REQUIRE_MESSAGE(root.exit_code == 0, root.both());
	REQUIRE(sink.wait_for_messages(2, 10000));
	std::vector<std::string> senders;
	for (const auto& m : sink.messages()) senders.push_back(m.mail_from);
	std::sort(senders.begin(), senders.end());
	CHECK(senders == std::vector<std::string>{"boss@elsewhere.example", "nobody@test.example"});
	// A sender that is no address is a bad option, whoever asks.
	ProgramResult malformed = run_program(sendmail_args(d, {"-f", "bad@@x", "carol@remote.example"}), message);
	CHECK_MESSAGE(malformed.exit_code == 64, malformed.both());  // EX_USAGE
	CHECK(malformed.err.find("5.1.7") != std::string::npos);
	usleep(300000);
	CHECK(sink.messages().size() == 2);  // the refused ones never left
	CHECK(maildir_files(d.maildir("alice")).empty());

	// Cron's From for an account user's crontab (root's name, or the
	// owner's, completed with the host name, which is no hosted domain)
	// names the host's own users: it passes, as with Postfix.
	for (std::string cron_from : {"root", "nobody"}) {
		ProgramResult cron = run_as(
		    user, sendmail_args(d, {"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "carol@remote.example"}),
		    "From: " + cron_from +
			" (Cron Daemon)\nTo: carol@remote.example\nSubject: Cron <nobody@host> date\n\nout\n");
		CHECK_MESSAGE(cron.exit_code == 0, cron.both());
	}
	REQUIRE(sink.wait_for_messages(4, 10000));
	std::set<std::string> cron_froms;
	for (const auto& m : sink.messages())
		for (std::string name : {"root", "nobody"})
			if (m.data.find("\r\nFrom: " + name + "@mx.test.example (Cron Daemon)\r\n") !=
			    std::string::npos)
				cron_froms.insert(name);
	CHECK(cron_froms == std::set<std::string>{"nobody", "root"});
}

TEST_CASE("sendmail: without a running ternd the message is refused, not lost silently") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	SmtpSink sink;
	TernDaemon d(not_started());
	d.write_config(sendmail_patch(sink));
	open_up(d);
	std::string message = "Subject: s\n\nbody\n";
	ProgramResult r = run_as(user, sendmail_args(d, {"alice@test.example"}), message);
	CHECK(r.exit_code == 75);  // EX_TEMPFAIL: the caller keeps the message
	CHECK(r.err.find("is ternd running?") != std::string::npos);
	CHECK(r.err.find("not sent") != std::string::npos);
	CHECK_FALSE(file_exists(d.data_dir() + "/tmp"));
	// mailq has no message to lose: its error says what it could not do.
	ProgramResult listing = run_as(user, sendmail_args(d, {"-bp"}), "");
	CHECK(listing.exit_code == 75);
	CHECK(listing.err.find("is ternd running?") != std::string::npos);
	CHECK(listing.err.find("the queue was not listed") != std::string::npos);
	CHECK(listing.err.find("message") == std::string::npos);

	// Started, then stopped: the socket is gone with the daemon.
	REQUIRE_MESSAGE(d.start(), d.error());
	open_up(d);
	CHECK(d.stop() == 0);
	CHECK_FALSE(file_exists(d.data_dir() + "/public/sendmail.sock"));
	ProgramResult after = run_as(user, sendmail_args(d, {"alice@test.example"}), message);
	CHECK(after.exit_code == 75);
	CHECK(maildir_files(d.maildir("alice")).empty());

	// A data_dir other users cannot search: the reason is named.
	REQUIRE_MESSAGE(d.start(), d.error());
	chmod(d.data_dir().c_str(), 0700);
	ProgramResult closed = run_as(user, sendmail_args(d, {"alice@test.example"}), message);
	CHECK(closed.exit_code == 75);
	CHECK(closed.err.find("0711") != std::string::npos);
	// Bad usage: EX_USAGE, before anything is read.
	ProgramResult usage = run_as(user, sendmail_args(d, {"-Z", "alice@test.example"}), message);
	CHECK(usage.exit_code == 64);
	CHECK(usage.err.find("illegal option -- Z") != std::string::npos);
}

TEST_CASE("sendmail: the socket works when ternd drops privileges") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	Running t(false, R"("user": "nobody")");
	TernDaemon& d = t.d;
	ProgramResult r = run_program(sendmail_args(d, {"alice@test.example"}), "Subject: s\n\nok\n");
	REQUIRE_MESSAGE(r.exit_code == 0, r.both() << log_tail(d));
	CHECK(wait_for_maildir(d.maildir("alice"), 1, 10000).size() == 1);
	// Bound as root with the ports, then handed to the daemon's user with
	// the privilege drop (done by now: the message went through).
	std::string sock = d.data_dir() + "/public/sendmail.sock";
	struct stat st {};
	REQUIRE(stat(sock.c_str(), &st) == 0);
	CHECK(st.st_uid == user.uid);
	CHECK((st.st_mode & 0777) == 0666);
	REQUIRE(stat((d.data_dir() + "/public").c_str(), &st) == 0);
	CHECK(st.st_uid == user.uid);
	CHECK((st.st_mode & 0777) == 0755);
	// The unprivileged daemon removes its socket when it stops.
	CHECK(d.stop() == 0);
	CHECK_FALSE(file_exists(sock));
}

TEST_CASE("sendmail: a message over the size limit is refused as a whole") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	Running t(false, R"("listeners": {"test": {"max_message_size": 10000}})");
	TernDaemon& d = t.d;
	std::string big = "Subject: big\n\n" + std::string(200, 'x') + "\n";
	for (int i = 0; i < 7; ++i) big += big;  // about 26 KB
	ProgramResult r = run_as(user, sendmail_args(d, {"alice@test.example"}), big);
	CHECK(r.exit_code == 65);  // EX_DATAERR
	// doc/behaviour.md D12: a size under 100 MiB reached the mailbox's limit.
	CHECK(r.err.find("552 5.2.3 message too large") != std::string::npos);
	ProgramResult small = run_as(user, sendmail_args(d, {"alice@test.example"}), "Subject: s\n\nok\n");
	CHECK_MESSAGE(small.exit_code == 0, small.both());
	auto files = wait_for_maildir(d.maildir("alice"), 1, 10000);
	CHECK(files.size() == 1);
	usleep(200000);
	CHECK(maildir_files(d.maildir("alice")).size() == 1);
}

// Connects to ternd's local socket, sends `request`, half-closes when
// `finish`, and returns what ternd answers until it closes (≤ 10 s).
std::string raw_exchange(const TernDaemon& d, const std::string& request, bool finish) {
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	REQUIRE(fd >= 0);
	sockaddr_un addr{};
	addr.sun_family = AF_UNIX;
	std::string path = d.data_dir() + "/public/sendmail.sock";
	std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
	REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
	REQUIRE(send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
	std::string answer;
	if (finish) {
		timeval tv{10, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		char buf[4096];
		for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) answer.append(buf, static_cast<size_t>(n));
	}
	close(fd);
	return answer;
}

// The files in data_dir/tmp.
std::vector<std::string> temp_files(const TernDaemon& d) { return maildir_files(d.data_dir(), "tmp"); }

TEST_CASE("sendmail socket: bad requests get a status, a vanished client leaves nothing") {
	if (geteuid() != 0) {
		MESSAGE("skipped: needs root");
		return;
	}
	Running t;
	TernDaemon& d = t.d;
	CHECK(raw_exchange(d, "hello\n", true) == "done 554 5.5.2 bad request: unknown request line\n");
	CHECK(raw_exchange(d, "rcpt a@b.example\ndata 200000000\n", true) == "done 552 5.3.4 message too large\n");
	CHECK(raw_exchange(d, "data 1\n", true) == "done 554 5.5.2 bad request: no recipients\n");
	CHECK(raw_exchange(d, "rcpt a b@\ndata 0\n", true) ==
	      "rcpt 553 5.1.3 a b@\tbad recipient address syntax\n"
	      "done 553 5.1.3 bad recipient address(es), message not sent\n");
	// Half a message, then gone: no temp file stays, nothing is queued.
	raw_exchange(d, "rcpt alice@test.example\ndata 100\nSubject: cut\r\n", false);
	usleep(300000);
	REQUIRE_RUNNING(d);
	CHECK(temp_files(d).empty());
	ProgramResult list = run_program(sendmail_args(d, {"-bp"}));
	CHECK(list.exit_code == 0);
	CHECK(list.out == "Mail queue is empty\n");
	// And the socket still serves.
	ProgramResult ok = run_program(sendmail_args(d, {"alice@test.example"}), "Subject: s\n\nok\n");
	CHECK_MESSAGE(ok.exit_code == 0, ok.both());
	CHECK(only_message(d).find("\r\n\r\nok\r\n") != std::string::npos);
}

TEST_CASE("sendmail socket: bare CR and LF from a client other than sendmail.tern are stored as CRLF") {
	// As on the SMTP ports (SPEC "Relaying"): sendmail.tern sends CRLF, but
	// any local program may talk to the socket.
	if (geteuid() != 0) {
		MESSAGE("skipped: needs root");
		return;
	}
	Running t;
	TernDaemon& d = t.d;
	std::string body = "From: root@test.example\nSubject: raw\r\n\npre\n.\nMAIL FROM:<evil@x>\rafter\rcr";
	std::string answer = raw_exchange(
	    d, "rcpt alice@test.example\ndata " + std::to_string(body.size()) + "\n" + body, true);
	INFO(answer);
	CHECK(answer.ends_with("done 250 2.0.0 queued\n"));
	std::string stored = only_message(d);
	INFO(stored);
	CHECK(stored.find("Subject: raw\r\n\r\npre\r\n.\r\nMAIL FROM:<evil@x>\r\nafter\r\ncr\r\n") !=
	      std::string::npos);
	for (size_t i = 0; i < stored.size(); ++i) {
		if (stored[i] == '\r') CHECK(stored.compare(i, 2, "\r\n") == 0);
		if (stored[i] == '\n') CHECK((i > 0 && stored[i - 1] == '\r'));
	}
}

TEST_CASE("sendmail: -bp and mailq list the queue in sendmail's mailq layout") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	SmtpSink sink;
	SmtpSink::Replies replies;
	replies.data_end = "451 4.3.0 try again later";
	sink.set_replies(replies);
	TernDaemon d(not_started());
	start(d, sendmail_patch(sink));

	ProgramResult sent = run_as(user, sendmail_args(d, {"carol@remote.example", "dave@remote.example"}),
	                            "Subject: stays\n\nqueued\n");
	REQUIRE_MESSAGE(sent.exit_code == 0, sent.both());
	// Wait until the first attempt failed, so the listing is stable.
	for (int i = 0; i < 100 && sink.data_received() < 1; ++i) usleep(100000);
	usleep(300000);

	ProgramResult listed = run_as(user, sendmail_args(d, {"-bp"}), "");
	INFO(listed.both());
	REQUIRE(listed.exit_code == 0);
	// What monitoring scripts parse: the heading, a line per message that
	// starts with its id, the recipient indented under it after the reason
	// of its last attempt, and the summary.
	CHECK(listed.out.starts_with("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"));
	CHECK(listed.out.find("  nobody@mx.test.example\n") != std::string::npos);
	// One message for both recipients (one queue record each), the reason once above them.
	CHECK(listed.out.find("451 4.3.0 try again later)\n" + std::string(41, ' ') + "carol@remote.example\n" +
	                      std::string(41, ' ') + "dave@remote.example\n") != std::string::npos);
	CHECK(listed.out.ends_with(" Kbytes in 1 Request.\n"));
	CHECK(listed.out.find("\n\n-- ") != std::string::npos);

	std::string link_dir = make_temp_dir("tern-mailq-");
	chmod(link_dir.c_str(), 0755);  // the unprivileged user runs mailq from here
	chmod(link_dir.c_str(), 0755);
	REQUIRE(symlink(sendmail_path().c_str(), (link_dir + "/mailq").c_str()) == 0);
	ProgramResult mailq = run_as(user, {link_dir + "/mailq", "-C", d.config_path()}, "");
	remove_tree(link_dir);
	CHECK(mailq.exit_code == 0);
	CHECK(mailq.out == listed.out);

	// Under the id ternctl knows the recipient's record by.
	ProgramResult ternctl = run_ternctl({"-c", d.config_path(), "queue", "list"});
	CHECK(ternctl.exit_code == 0);
	std::string id = ternctl.out.substr(ternctl.out.find('\n') + 1);
	id = id.substr(0, id.find(' '));
	REQUIRE(!id.empty());
	CHECK(listed.out.find("\n" + id + " ") != std::string::npos);
}

TEST_CASE("sendmail -bs: an application's SMTP dialogue on the pipe hands each message over") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	Running t(true);
	TernDaemon& d = t.d;
	SmtpSink& sink = t.sink;
	// As a PHP framework's sendmail transport speaks it (`sendmail -bs`),
	// pipelined: one message of the user's own, one from an address that
	// is not the user's, refused at its end of data with ternd's reply.
	std::string dialogue =
	    "EHLO app.example\r\n"
	    "MAIL FROM:<nobody@test.example>\r\nRCPT TO:<alice@test.example>\r\nRCPT TO:<carol@remote.example>\r\n"
	    "DATA\r\nFrom: nobody@test.example\r\nTo: alice@test.example\r\nBcc: dave@remote.example\r\n"
	    "Subject: first\r\n\r\n..a line that starts with a dot\r\n.\r\n"
	    "MAIL FROM:<alice@test.example>\r\nRCPT TO:<carol@remote.example>\r\nDATA\r\nSubject: second\r\n\r\nx\r\n.\r\n"
	    "QUIT\r\n";
	ProgramResult r = run_as(user, sendmail_args(d, {"-bs", "-i"}), dialogue);
	INFO(r.both() << log_tail(d));
	CHECK(r.exit_code == 0);
	CHECK(r.out.starts_with("220 mx.test.example ESMTP tern sendmail\r\n250-mx.test.example\r\n"));
	size_t first = r.out.find("354 see you at the bare dot\r\n250 2.0.0 queued\r\n");
	CHECK(first != std::string::npos);
	CHECK(r.out.find("354 see you at the bare dot\r\n"
	                 "550 5.7.1 sender alice@test.example does not belong to user nobody\r\n",
	                 first + 1) != std::string::npos);
	CHECK(r.out.ends_with("221 2.0.0 okay thanks bye\r\n"));

	std::string local = only_message(d);
	CHECK(local.find("\r\n\r\n.a line that starts with a dot\r\n") != std::string::npos);
	CHECK(local.find("Received: by mx.test.example (tern sendmail, from userid " + std::to_string(user.uid) +
	                 ")") != std::string::npos);
	CHECK_FALSE(has_field(local, "Bcc"));
	CHECK(has_field(local, "Message-Id"));
	REQUIRE(sink.wait_for_messages(1, 10000));
	usleep(300000);
	REQUIRE(sink.messages().size() == 1);  // the refused message never left
	CHECK(sink.messages()[0].mail_from == "nobody@test.example");
	CHECK(sink.messages()[0].rcpt_to == std::vector<std::string>{"carol@remote.example"});
}

TEST_CASE("sendmail -bs: swaks delivers through the pipe; without ternd the reply is a 451") {
	Running t;
	TernDaemon& d = t.d;
	std::string command = sendmail_path() + " -C " + d.config_path() + " -bs";
	RunResult r = run_command({"/usr/bin/timeout", "30", "/usr/bin/swaks", "--pipe", command, "--from",
	                           "boss@elsewhere.example", "--to", "alice@test.example", "--header",
	                           "Subject: through the pipe"});
	INFO(r.output << log_tail(d));
	CHECK(r.exit_code == 0);
	std::string text = only_message(d);
	CHECK(text.find("Subject: through the pipe\r\n") != std::string::npos);
	CHECK(text.find("Return-Path: <boss@elsewhere.example>") != std::string::npos);

	d.stop();
	ProgramResult down = run_program(
	    sendmail_args(d, {"-bs"}),
	    "HELO app.example\r\nMAIL FROM:<boss@elsewhere.example>\r\n"
	    "RCPT TO:<alice@test.example>\r\nDATA\r\nSubject: s\r\n\r\nx\r\n.\r\nQUIT\r\n");
	INFO(down.both());
	CHECK(down.exit_code == 0);
	CHECK(down.out.find("354 see you at the bare dot\r\n451 4.3.0 cannot reach ternd at ") != std::string::npos);
	CHECK(down.out.ends_with("221 2.0.0 okay thanks bye\r\n"));
	CHECK(down.err.find("the message was not sent") != std::string::npos);
}

// The sendmail transport of Symfony Mailer (Debian's php-symfony-mailer),
// run by PHP as the local user: it speaks `sendmail -bs` and says
// "HELO [127.0.0.1]". Prints "sent" or the exception's message.
const char* symfony_send_php = R"(<?php
require_once '/usr/share/php/Symfony/Component/Mailer/autoload.php';
use Symfony\Component\Mailer\Mailer;
use Symfony\Component\Mailer\Transport\SendmailTransport;
use Symfony\Component\Mime\Email;
[, $command, $from, $to] = $argv;
$email = (new Email())->from($from)->to($to)->subject('from symfony')->text("hello\n.a dot line\n");
try {
    (new Mailer(new SendmailTransport($command)))->send($email);
    echo "sent\n";
} catch (\Throwable $e) {
    echo 'error: ', $e->getMessage(), "\n";
    exit(1);
}
)";

TEST_CASE("sendmail -bs: Symfony Mailer's sendmail transport sends through it and sees a refusal") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	if (access("/usr/bin/php", X_OK) != 0 ||
	    access("/usr/share/php/Symfony/Component/Mailer/autoload.php", R_OK) != 0) {
		MESSAGE("skipped: needs Debian's php-cli and php-symfony-mailer (contrib/debian-packages.txt)");
		return;
	}
	Running t(true);
	TernDaemon& d = t.d;
	std::string script = d.dir() + "/send.php";
	write_file(script, symfony_send_php);
	chmod(script.c_str(), 0644);
	std::string command = sendmail_path() + " -C " + d.config_path() + " -bs";

	ProgramResult sent = run_as(user,
	                            {"/usr/bin/php", script, command, "nobody@test.example", "alice@test.example"}, "");
	INFO(sent.both() << log_tail(d));
	CHECK(sent.exit_code == 0);
	CHECK(sent.out == "sent\n");
	std::string text = only_message(d);
	CHECK(text.find("Subject: from symfony\r\n") != std::string::npos);
	CHECK(text.find("\r\n\r\nhello\r\n.a dot line\r\n") != std::string::npos);
	CHECK(text.find("Return-Path: <nobody@test.example>") != std::string::npos);

	// A sender that is not the user's: the application gets ternd's reply.
	ProgramResult refused = run_as(
	    user, {"/usr/bin/php", script, command, "alice@test.example", "carol@remote.example"}, "");
	INFO(refused.both());
	CHECK(refused.exit_code == 1);
	CHECK(refused.out.find("550 5.7.1 sender alice@test.example does not belong to user nobody") !=
	      std::string::npos);
}

namespace {

// Python for the socket tests: read_all(s) returns what ternd writes on
// s until it closes (10 s at most).
const std::string python_read_all = R"(import socket, sys, os, signal, time
def read_all(s):
    s.settimeout(10)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return data.decode()
        data += chunk
)";

// A python3 script that holds `n` connections to the socket open, then
// opens one more and prints what ternd writes on it until it closes.
const std::string hold_and_probe_script = python_read_all + R"(
path, n = sys.argv[1], int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
probe = socket.socket(socket.AF_UNIX)
probe.connect(path)
sys.stdout.write(read_all(probe))
)";

}  // namespace

TEST_CASE("sendmail socket: a client over the limits is told why (done 421) before it is closed") {
	LocalUser user = nobody();
	SKIP_UNLESS_ROOT(user);
	Running t;
	const std::string socket = t.d.data_dir() + "/public/sendmail.sock";

	// One user holds at most 50 of the 200 places...
	ProgramResult one_user = run_as(user, {"/usr/bin/python3", "-c", hold_and_probe_script, socket, "50"}, "");
	INFO(one_user.both() << log_tail(t.d));
	CHECK(one_user.exit_code == 0);
	CHECK(one_user.out ==
	      "done 421 4.7.0 too many local submissions at once from user id " + std::to_string(user.uid) +
	          ", try again later\n");
	// ...root is not held to that share, only to the 200 in all.
	ProgramResult all = run_program({"/usr/bin/python3", "-c", hold_and_probe_script, socket, "200"});
	INFO(all.both());
	CHECK(all.exit_code == 0);
	CHECK(all.out == "done 421 4.7.0 too many local submissions at once, try again later\n");

	// Once they are gone, mail flows again.
	ProgramResult r = run_program(sendmail_args(t.d, {"alice@test.example"}), "Subject: after\n\nok\n");
	CHECK_MESSAGE(r.exit_code == 0, r.both());
	CHECK(only_message(t.d).find("Subject: after") != std::string::npos);
}

TEST_CASE("sendmail socket: a request cut off by the client's end of input is refused, nothing queued") {
	Running t;
	const std::string socket = t.d.data_dir() + "/public/sendmail.sock";
	// In the head and inside the data; each client then shuts its sending
	// side down and reads.
	const std::string script = python_read_all + R"(
path = sys.argv[1]
for first in (b"rcpt root\n", b"rcpt root\ndata 40\nSubject: x\n"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(first)
    s.shutdown(socket.SHUT_WR)
    sys.stdout.write(read_all(s))
)";
	ProgramResult r = run_program({"/usr/bin/python3", "-c", script, socket});
	INFO(r.both() << log_tail(t.d));
	CHECK(r.exit_code == 0);
	const std::string refusal =
	    "done 554 5.5.2 bad request: input ended before the whole message, nothing queued\n";
	CHECK(r.out == refusal + refusal);
	CHECK(maildir_files(t.d.maildir("alice")).empty());
	// The cut-off data's temp file is gone with its client.
	for (const auto& e : std::filesystem::directory_iterator(t.d.data_dir() + "/tmp"))
		CHECK_MESSAGE(!e.path().filename().string().starts_with("sendmail-"), e.path());
}

TEST_CASE("sendmail socket: on SIGTERM a client still sending its request gets done 421 4.3.2 at once") {
	if (geteuid() != 0) {
		MESSAGE("skipped: needs root");
		return;
	}
	Running t;
	const std::string socket = t.d.data_dir() + "/public/sendmail.sock";
	// One client that sent nothing, one halfway through its head, one
	// inside its data: none has handed a message over.
	const std::string script = python_read_all + R"(
path, pid = sys.argv[1], int(sys.argv[2])
clients = []
for first in (b"", b"rcpt root", b"rcpt root\ndata 40\nSubject: x\n"):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    if first:
        s.sendall(first)
    clients.append(s)
time.sleep(0.5)
os.kill(pid, signal.SIGTERM)
for s in clients:
    sys.stdout.write(read_all(s))
)";
	ProgramResult r = run_program({"/usr/bin/python3", "-c", script, socket, std::to_string(t.d.pid())});
	INFO(r.both() << log_tail(t.d));
	CHECK(r.exit_code == 0);
	CHECK(r.out == "done 421 4.3.2 shutting down\ndone 421 4.3.2 shutting down\ndone 421 4.3.2 shutting down\n");
	// The script's SIGTERM stops it: another one from stop() could land
	// after its signal watchers are gone and kill it.
	CHECK(t.d.wait_exit(15000) == 0);
}
