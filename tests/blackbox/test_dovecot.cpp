// tern and a real Dovecot on one Maildir, as a Debian mail host runs them:
// Dovecot's IMAP reads what tern delivered, and the junk marks a user sets
// over IMAP are read back by tern's rules from the files Dovecot rewrites
// (the keywords in the file names and the folder's dovecot-keywords file).
#include <unistd.h>

#include "bb.h"
#include "helpers/dovecot.h"
#include "inbound/junk_marks.h"

TEST_CASE("dovecot: IMAP reads tern's Maildir, and junk marks set over IMAP are read back by tern") {
	if (geteuid() != 0 || !DovecotServer::available()) {
		MESSAGE("skipped: needs root and Debian's dovecot-imapd (contrib/debian-packages.txt)");
		return;
	}
	// Mail belongs to one unprivileged user that both daemons run as.
	TernDaemon daemon({.config_patch = R"({"user": "nobody"})", .start = false});
	daemon.write_config();
	std::string maildir = daemon.maildir("alice");
	chown_tree_to_nobody(daemon.dir());
	REQUIRE_MESSAGE(daemon.start(), daemon.error());

	SmtpClient c = connect_and_ehlo(daemon);
	Transaction t = send_mail(c, test_sender, {"alice@test.example"},
	                          make_message("first from bob", "Hello Alice, this is Bob.\r\n"));
	REQUIRE(t.reply.code == 250);
	REQUIRE(wait_for_maildir(maildir, 1).size() == 1);

	DovecotServer dovecot(maildir, "alice", "imap-secret");
	REQUIRE_MESSAGE(dovecot.start(), dovecot.error());
	RunResult r = dovecot.imap(
	    "typ, data = imap.select('INBOX')\n"
	    "print('exists', data[0].decode())\n"
	    "typ, data = imap.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')\n"
	    "print('subject', data[0][1].decode().strip())\n"
	    "print('store', imap.store('1', '+FLAGS', '($Junk)')[0])\n"
	    "print('create', imap.create('Archive')[0])\n"
	    "print('copy', imap.copy('1', 'Archive')[0])\n");
	INFO(r.output << "\n" << dovecot.log_text());
	REQUIRE(r.exit_code == 0);
	CHECK(contains(r.output, "exists 1"));
	CHECK(contains(r.output, "subject Subject: first from bob"));
	CHECK(contains(r.output, "store OK"));
	CHECK(contains(r.output, "copy OK"));

	// Dovecot moved the file to cur/ with the keyword's letter among its flags.
	auto cur = maildir_names(maildir + "/cur");
	REQUIRE(cur.size() == 1);
	auto keywords = tern::inbound::parse_dovecot_keywords(read_file(maildir + "/dovecot-keywords"));
	CHECK(tern::inbound::junk_mark_from_keywords(tern::inbound::maildir_flags(cur[0]), keywords) ==
	      tern::inbound::JunkMark::junk);
	// The copy in Archive keeps its unique name up to the flags, and the folder
	// rules count Archive as not junk.
	auto archived = maildir_names(maildir + "/.Archive/cur");
	REQUIRE(archived.size() == 1);
	CHECK(tern::inbound::maildir_unique_name(archived[0]) == tern::inbound::maildir_unique_name(cur[0]));
	tern::inbound::FolderClassifier folders(tern::inbound::FolderRules{});
	CHECK(folders.classify(tern::inbound::folder_name_from_dir(".Archive")) == tern::inbound::FolderKind::notjunk);

	// A message tern delivers while Dovecot has the mailbox indexed shows up.
	t = send_mail(c, test_sender, {"alice@test.example"}, make_message("second", "Again.\r\n"));
	REQUIRE(t.reply.code == 250);
	r = dovecot.imap("typ, data = imap.select('INBOX')\nprint('exists', data[0].decode())\n");
	CHECK(contains(r.output, "exists 2"));
}

// Dovecot names Maildir++ folders in IMAP's modified UTF-7 on disk: a
// folder tern delivers to under a name beyond ASCII, or with "&", is the
// one an IMAP client selects by that name (tern wrote ".Été" before,
// which Dovecot listed but could not open).
TEST_CASE("dovecot: a folder named beyond ASCII is the one IMAP opens") {
	if (geteuid() != 0 || !DovecotServer::available()) {
		MESSAGE("skipped: needs root and Debian's dovecot-imapd (contrib/debian-packages.txt)");
		return;
	}
	TernDaemon daemon({.config_patch = R"({"user": "nobody", "accounts": {"alice": {"destinations":
		{"alice@test.example": {"mailbox": "\u00c9t\u00e9 R&D"}}}}})",
	                   .start = false});
	daemon.write_config();
	std::string maildir = daemon.maildir("alice");
	chown_tree_to_nobody(daemon.dir());
	REQUIRE_MESSAGE(daemon.start(), daemon.error());
	SmtpClient c = connect_and_ehlo(daemon);
	Transaction t = send_mail(c, test_sender, {"alice@test.example"}, make_message("to a named folder"));
	REQUIRE(t.reply.code == 250);
	REQUIRE(wait_for_maildir(maildir + "/.&AMk-t&AOk- R&-D", 1).size() == 1);

	DovecotServer dovecot(maildir, "alice", "imap-secret");
	REQUIRE_MESSAGE(dovecot.start(), dovecot.error());
	RunResult r = dovecot.imap(
	    "typ, data = imap.select('\"&AMk-t&AOk- R&-D\"')\n"
	    "print('select', typ, data[0].decode())\n"
	    "typ, data = imap.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')\n"
	    "print('subject', data[0][1].decode().strip())\n");
	INFO(r.output << "\n" << dovecot.log_text());
	CHECK(contains(r.output, "select OK 1"));
	CHECK(contains(r.output, "subject Subject: to a named folder"));
}
