// Interoperability with a real MTA: a private Postfix from Debian (never the
// system instance: its own config directory, queue and data directories,
// loopback only, a random port) relays a message to tern, and the message
// arrives intact in tern's Maildir. Postfix's SMTP client never sends BDAT,
// whatever the server offers (Postfix documents its CHUNKING support as
// server-side only; Debian 12 ships 3.7), so the relay uses DATA after
// tern's CHUNKING offer; the test checks which command tern saw. BDAT from
// real clients: tests/blackbox/test_bdat.cpp (Python's smtplib). Skipped
// when Postfix is not installed or we are not root (Postfix's master must
// start as root and drop to mail_owner).
#include "bb.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "ternctl_run.h"

namespace {

const char* postfix_bin = "/usr/sbin/postfix";
const char* postfix_master = "/usr/lib/postfix/sbin/master";

// One private Postfix: main.cf and master.cf in its own folder, started
// with `postfix -c DIR start`, stopped (bounded) by the destructor.
class PrivatePostfix {
public:
	PrivatePostfix(int relay_port) : port_(free_tcp_port()) {
		dir_ = make_temp_dir("tern-postfix-");
		// The queue lives below: Postfix's daemons (user postfix) need to
		// reach it, and its root must belong to root.
		chmod(dir_.c_str(), 0755);
		mkdir((dir_ + "/queue").c_str(), 0755);  // its subfolders are Postfix's to make
		std::ofstream(dir_ + "/main.cf") << "compatibility_level = 3.6\n"
						 << "queue_directory = " << dir_ << "/queue\n"
						 << "data_directory = " << dir_ << "/data\n"
						 << "mail_owner = postfix\n"
						 << "myhostname = postfix.test.example\n"
						 << "mydomain = test.example\n"
						 << "inet_interfaces = loopback-only\n"
						 << "inet_protocols = ipv4\n"
						 << "mydestination =\n"
						 << "mynetworks = 127.0.0.0/8\n"
						 << "relayhost = [127.0.0.1]:" << relay_port << "\n"
						 << "smtp_tls_security_level = none\n"
						 // Nothing from the system resolver: the relay host is an IP.
						 << "smtp_dns_support_level = disabled\n"
						 << "smtpd_peername_lookup = no\n"
						 << "alias_maps =\nalias_database =\nlocal_recipient_maps =\n"
						 << "smtpd_relay_restrictions = permit_mynetworks, reject\n"
						 << "maillog_file_prefixes = " << dir_ << "\n"
						 << "maillog_file = " << dir_ << "/maillog\n";
		// The services a relay needs; the smtpd on a random loopback port.
		std::ofstream(dir_ + "/master.cf") << "127.0.0.1:" << port_ << " inet n - n - - smtpd\n"
						   << "pickup unix n - n 60 1 pickup\n"
						   << "cleanup unix n - n - 0 cleanup\n"
						   << "qmgr unix n - n 300 1 qmgr\n"
						   << "rewrite unix - - n - - trivial-rewrite\n"
						   << "bounce unix - - n - 0 bounce\n"
						   << "defer unix - - n - 0 bounce\n"
						   << "trace unix - - n - 0 bounce\n"
						   << "verify unix - - n - 1 verify\n"
						   << "flush unix n - n 1000? 0 flush\n"
						   << "proxymap unix - - n - - proxymap\n"
						   << "smtp unix - - n - - smtp\n"
						   << "relay unix - - n - - smtp\n"
						   << "showq unix n - n - - showq\n"
						   << "error unix - - n - - error\n"
						   << "retry unix - - n - - error\n"
						   << "discard unix - - n - - discard\n"
						   << "anvil unix - - n - 1 anvil\n"
						   << "scache unix - - n - 1 scache\n"
						   << "postlog unix-dgram n - n - 1 postlogd\n";
	}
	~PrivatePostfix() {
		if (started_) {
			run_program({postfix_bin, "-c", dir_, "stop"}, "", 20000);
			// A master that did not go within the bound is killed.
			std::string pid_text = read_file(dir_ + "/queue/pid/master.pid");
			pid_t pid = static_cast<pid_t>(std::atoi(pid_text.c_str()));
			for (int i = 0; pid > 1 && i < 100 && kill(pid, 0) == 0; i++) usleep(50000);
			if (pid > 1 && kill(pid, 0) == 0) kill(pid, SIGKILL);
		}
		remove_tree(dir_);
	}
	PrivatePostfix(const PrivatePostfix&) = delete;
	PrivatePostfix& operator=(const PrivatePostfix&) = delete;

	bool start(std::string& output) {
		ProgramResult r = run_program({postfix_bin, "-c", dir_, "start"}, "", 30000);
		output = r.both();
		started_ = true;
		if (r.exit_code != 0) return false;
		// Wait ≤ 10 s for the smtpd port.
		for (int i = 0; i < 200; i++) {
			SmtpClient probe;
			if (probe.connect("127.0.0.1", port_)) return true;
			usleep(50000);
		}
		output += "\npostfix smtpd did not listen on port " + std::to_string(port_);
		return false;
	}
	int port() const { return port_; }
	std::string log() const { return read_file(dir_ + "/maillog"); }

private:
	int port_;
	std::string dir_;
	bool started_ = false;
};

}  // namespace

TEST_CASE("postfix: a private Postfix relays to tern and the message arrives intact") {
	if (access(postfix_bin, X_OK) != 0 || access(postfix_master, X_OK) != 0) {
		MESSAGE("SKIPPED: Postfix is not installed (Debian package postfix)");
		return;
	}
	if (geteuid() != 0) {
		MESSAGE("SKIPPED: a private Postfix needs root to start its master");
		return;
	}
	TernDaemon d;
	REQUIRE_RUNNING(d);
	d.dns().add("sender.example", "A", "127.0.0.1");
	PrivatePostfix postfix(d.smtp_port());
	std::string output;
	REQUIRE_MESSAGE(postfix.start(output), output << "\n" << postfix.log());

	// Lines starting with dots and a long body: BDAT carries them as they
	// are (no dot-stuffing on the wire), and the chunks must add up.
	std::string message =
	    "From: <bob@sender.example>\r\nTo: <alice@test.example>\r\nSubject: via postfix\r\n"
	    "Message-Id: <postfix-bdat-1@sender.example>\r\nDate: Thu, 3 Dec 2026 07:00:00 +0000\r\n\r\n"
	    ".a line with a leading dot\r\n..two\r\n.\r\n";
	for (int i = 0; i < 2000; i++)
		message += "line " + std::to_string(i) + " of a body long enough for several writes\r\n";
	message += "the end\r\n";

	SmtpClient c;
	REQUIRE(c.connect("127.0.0.1", postfix.port()));
	REQUIRE(c.greet_and_ehlo("client.sender.example"));
	Transaction t = send_mail(c, "bob@sender.example", {"alice@test.example"}, message);
	INFO(t.step << ": " << t.reply.raw);
	REQUIRE(t.step == "END");
	REQUIRE(t.reply.code == 250);
	c.cmd("QUIT");

	auto files = wait_for_maildir(d.maildir("alice"), 1, 30000);
	INFO(postfix.log());
	INFO(log_tail(d, 8000));
	REQUIRE(files.size() == 1);
	std::string stored = read_file(files[0]);
	// Postfix adds its Received line above the message; the rest is intact.
	CHECK(ends_with(stored, message));
	CHECK(contains(stored, "by postfix.test.example (Postfix)"));
	// tern's debug log names each command's result; the last one is logged
	// with its reply, right after the Maildir write. Postfix got CHUNKING
	// offered and, as its client always does, sent DATA.
	std::string log = d.log_text();
	for (int i = 0; i < 100 && !contains(log, "cmd=data") && !contains(log, "cmd=bdat"); i++) {
		usleep(50000);
		log = d.log_text();
	}
	CHECK(contains(log, "cmd=data code=250"));
	CHECK_FALSE(contains(log, "cmd=bdat"));
}
