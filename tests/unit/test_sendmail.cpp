// sendmail.tern's pure parts: the command line, the message read from
// stdin, -t, the local submission socket protocol, exit statuses, and
// the server's decision about the local sender (man/sendmail.tern.8).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "message/sendmail.h"
#include "message/submission.h"
#include "server/local_submit.h"

using namespace tern::message::sendmail;

namespace {

const std::string default_config = "/etc/tern/tern.json";

Args args_of(std::vector<std::string> args, std::string program = "/usr/sbin/sendmail") {
	return parse_args(program, args, default_config);
}

}  // namespace

TEST_CASE("sendmail args: recipients, -t, -i, -f, -F, -C") {
	Args a = args_of({"-t", "-i", "-f", "app@example.org", "-FWeb App", "-C", "/tmp/t.json", "bob@example.org"});
	CHECK(a.error == "");
	CHECK(a.mode == Mode::deliver);
	CHECK(a.recipients_from_headers);
	CHECK(a.ignore_dots);
	REQUIRE(a.sender.has_value());
	CHECK(*a.sender == "app@example.org");
	CHECK(a.full_name == "Web App");
	CHECK(a.config_path == "/tmp/t.json");
	CHECK(a.recipients == std::vector<std::string>{"bob@example.org"});

	Args b = args_of({"-oi", "-fapp@example.org", "--", "-odd@example.org"});
	CHECK(b.error == "");
	CHECK(b.ignore_dots);
	CHECK(*b.sender == "app@example.org");
	CHECK(b.config_path == default_config);
	CHECK(b.recipients == std::vector<std::string>{"-odd@example.org"});

	// Grouped flags, as getopt allows: "-ti".
	Args c = args_of({"-ti"});
	CHECK(c.error == "");
	CHECK(c.recipients_from_headers);
	CHECK(c.ignore_dots);
	// -r is the old name of -f.
	CHECK(*args_of({"-r", "x@y.example", "z@y.example"}).sender == "x@y.example");
	// A recipient argument is an address list.
	CHECK(args_of({"a@example.com,b@example.com", "Joe <j@example.com>", "root"}).recipients ==
	      std::vector<std::string>{"a@example.com", "b@example.com", "j@example.com", "root"});
	CHECK(args_of({"bad<@"}).recipients == std::vector<std::string>{"bad<@"});
}

TEST_CASE("sendmail args: ignored options, modes, errors") {
	// What cron, PHP and mailx pass: accepted and ignored.
	Args a = args_of({"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-odi", "-v",    "-N",    "never", "-R",
	                  "hdrs",         "-X", "/tmp/log",   "-L",   "tag",  "-O",    "Opt=1", "-U",    "-m",
	                  "-n",           "-G", "-h",         "5",    "-V",   "envid", "-Am",   "root"});
	CHECK(a.error == "");
	CHECK(a.recipients == std::vector<std::string>{"root"});
	CHECK(a.full_name == "CronDaemon");

	CHECK(args_of({"-bp"}).mode == Mode::list_queue);
	CHECK(args_of({"-bp"}).error == "");
	CHECK(args_of({}, "/usr/bin/mailq").mode == Mode::list_queue);
	CHECK(args_of({}, "mailq").error == "");
	CHECK(args_of({"-bm", "a@b.example"}).mode == Mode::deliver);
	CHECK(args_of({"-q"}).mode == Mode::nothing);
	CHECK(args_of({"-q30m"}).mode == Mode::nothing);
	CHECK(args_of({"-bi"}).mode == Mode::nothing);
	CHECK(args_of({"-I"}).mode == Mode::nothing);
	CHECK(args_of({}, "newaliases").mode == Mode::nothing);

	CHECK(args_of({"-Z", "a@b.example"}).error == "illegal option -- Z");
	CHECK(args_of({"-bs"}).mode == Mode::smtp);
	CHECK(args_of({"-bd"}).error == "-bd is not supported");
	CHECK(args_of({"-f"}).error == "option requires an argument -- f");
	// No recipient and no -t: nothing to send to.
	CHECK(args_of({"-i"}).error != "");
	CHECK(args_of({}).error != "");
}

TEST_CASE("sendmail recipients: each address once, the first occurrence kept") {
	using V = std::vector<std::string>;
	CHECK(distinct_recipients(V{"bob@example.org", "alice@example.org", "bob@EXAMPLE.org"}) ==
	      V{"bob@example.org", "alice@example.org"});
	CHECK(distinct_recipients(V{"Bob@example.org", "bob@example.org"}) ==
	      V{"Bob@example.org", "bob@example.org"});  // localparts are case-sensitive
	CHECK(distinct_recipients(V{"root", "root", "root@example.org"}) == V{"root", "root@example.org"});
	CHECK(distinct_recipients(V{}).empty());
}

TEST_CASE("sendmail message: CRLF and the lone dot") {
	CHECK(normalize_message("Subject: x\n\nline\n.\nafter\n", false) == "Subject: x\r\n\r\nline\r\n");
	CHECK(normalize_message("Subject: x\n\nline\n.\nafter\n", true) == "Subject: x\r\n\r\nline\r\n.\r\nafter\r\n");
	CHECK(normalize_message("a\r\nb", false) == "a\r\nb\r\n");
	CHECK(normalize_message(".\r\n", false) == "");
	CHECK(normalize_message("..\n", false) == "..\r\n");  // not dot-stuffed: no SMTP here
	// A bare CR ends a line too, as a bare LF does (doc/behaviour.md D8).
	CHECK(normalize_message("x\rbare cr\r\n", false) == "x\r\nbare cr\r\n");
	CHECK(normalize_message("a\r\rb\n\rc\r", false) == "a\r\n\r\nb\r\n\r\nc\r\n");
	CHECK(normalize_message("a\r.\rafter", false) == "a\r\n");
	CHECK(normalize_message("", true) == "");
}

TEST_CASE("sendmail message: header section is ensured") {
	CHECK(ensure_header_section("hello world\r\n") == "\r\nhello world\r\n");
	CHECK(ensure_header_section("Subject: hi\r\n\r\nbody\r\n") == "Subject: hi\r\n\r\nbody\r\n");
	CHECK(ensure_header_section("From someone Mon Jan  1\r\nSubject: hi\r\n\r\nb\r\n") ==
	      "Subject: hi\r\n\r\nb\r\n");
	CHECK(ensure_header_section("no colon here: but space in name\r\n") ==
	      "\r\nno colon here: but space in name\r\n");
	CHECK(ensure_header_section("") == "");
	// Fields running straight into text: the empty line goes before the
	// first line that is neither a field nor a continuation.
	CHECK(ensure_header_section("Subject: h1\r\nThis is the body.\r\nmore\r\n") ==
	      "Subject: h1\r\n\r\nThis is the body.\r\nmore\r\n");
	CHECK(ensure_header_section("Subject: a\r\n folded\r\nTo: x@y.example\r\nthe body: with space\r\n") ==
	      "Subject: a\r\n folded\r\nTo: x@y.example\r\n\r\nthe body: with space\r\n");
	CHECK(ensure_header_section("Subject: only header\r\n") == "Subject: only header\r\n");
	// White space before the colon is still a field (RFC 5322 4.5.2).
	CHECK(ensure_header_section("To: a@x.example\r\nSubject : hi\r\nBcc: s@y.example\r\n\r\nbody\r\n") ==
	      "To: a@x.example\r\nSubject : hi\r\nBcc: s@y.example\r\n\r\nbody\r\n");
	// A fold without its indent, fields after it: a broken header, left to
	// be refused, never sent with its Bcc as text.
	const std::string broken = "To: a@x.example,\r\nb@x.example\r\nBcc: s@y.example\r\n\r\nbody\r\n";
	CHECK(ensure_header_section(broken) == broken);
	// Without any field before it, text is body whatever it says.
	CHECK(ensure_header_section("Disk report\r\nStatus: ok\r\n") == "\r\nDisk report\r\nStatus: ok\r\n");
	CHECK(ensure_header_section("Subject: no newline") == "Subject: no newline");
}

TEST_CASE("sendmail -t: To, Cc, Bcc; Bcc removed") {
	std::string msg =
	    "From: App <app@example.org>\r\nTo: Bob <bob@example.org>, carol@example.net\r\nCc: undisclosed:;\r\n"
	    "Bcc: hidden@example.com,\r\n  root\r\nSubject: x\r\n\r\nBcc: body line stays\r\n";
	HeaderRecipients h = take_header_recipients(msg);
	CHECK(h.error == "");
	CHECK(h.recipients ==
	      std::vector<std::string>{"bob@example.org", "carol@example.net", "hidden@example.com", "root"});
	CHECK(h.message ==
	      "From: App <app@example.org>\r\nTo: Bob <bob@example.org>, carol@example.net\r\nCc: undisclosed:;\r\n"
	      "Subject: x\r\n\r\nBcc: body line stays\r\n");

	CHECK(take_header_recipients("To: a@b.example, <broken\r\n\r\nx\r\n").error != "");
	CHECK(take_header_recipients("Subject: no recipients\r\n\r\nx\r\n").recipients.empty());
}

TEST_CASE("sendmail -t: a resent message goes to its Resent- recipients; Resent-Bcc removed") {
	std::string msg =
	    "To: a@example.com\r\nBcc: old@example.com\r\nResent-From: root\r\nResent-To: resent@example.com\r\n"
	    "Resent-Cc: copy@example.com\r\nResent-Bcc: rb@example.com\r\nSubject: h2\r\n\r\nb\r\n";
	HeaderRecipients h = take_header_recipients(msg);
	CHECK(h.error == "");
	CHECK(h.recipients == std::vector<std::string>{"resent@example.com", "copy@example.com", "rb@example.com"});
	CHECK(h.message ==
	      "To: a@example.com\r\nResent-From: root\r\nResent-To: resent@example.com\r\n"
	      "Resent-Cc: copy@example.com\r\nSubject: h2\r\n\r\nb\r\n");
	// Sent on twice: the newest block (on top) names the recipients.
	HeaderRecipients twice = take_header_recipients(
	    "Resent-To: newest@example.com\r\nResent-From: me\r\nReceived: by x\r\nResent-To: older@example.com\r\n"
	    "Resent-Bcc: olderhidden@example.com\r\nTo: a@example.com\r\n\r\nb\r\n");
	CHECK(twice.recipients == std::vector<std::string>{"newest@example.com"});
	CHECK(twice.message.find("olderhidden") == std::string::npos);
	// Without -t the hidden ones go too; no address is parsed.
	CHECK(take_header_recipients(msg, false).message == h.message);
	// Resent- address fields are qualified like the originals.
	CHECK(qualify_header_addresses("Resent-From: root\r\nResent-To: bob\r\n\r\n", "mx.example.org") ==
	      "Resent-From: root@mx.example.org\r\nResent-To: bob@mx.example.org\r\n\r\n");
}

TEST_CASE("sendmail: a bare name is completed with the host name, nothing else") {
	const std::string host = "mx.example.org";
	CHECK(with_host_domain("root", host) == "root@mx.example.org");
	CHECK(with_host_domain("www-data", host) == "www-data@mx.example.org");
	CHECK(with_host_domain("bob@example.net", host) == "bob@example.net");
	CHECK(with_host_domain("@relay.example:bob@example.net", host) == "@relay.example:bob@example.net");
	CHECK(with_host_domain("\"a b\"@example.net", host) == "\"a b\"@example.net");
}

TEST_CASE("sendmail: unqualified header addresses get the hostname") {
	const std::string host = "mx.example.org";
	CHECK(qualify_address_list("root (Cron Daemon)", host) == "root@mx.example.org (Cron Daemon)");
	CHECK(qualify_address_list("\"(Cron Daemon)\" <root>", host) == "\"(Cron Daemon)\" <root@mx.example.org>");
	CHECK(qualify_address_list("root, Bob <bob@example.net>, www-data", host) ==
	      "root@mx.example.org, Bob <bob@example.net>, www-data@mx.example.org");
	CHECK(qualify_address_list("team: root, bob;", host) == "team: root@mx.example.org, bob@mx.example.org;");
	CHECK(qualify_address_list("undisclosed-recipients:;", host) == "undisclosed-recipients:;");
	CHECK(qualify_address_list("a@b.example (x, y)", host) == "a@b.example (x, y)");
	CHECK(qualify_address_list("John Smith", host) == "John Smith");  // not an address: left to the checks

	std::string msg =
	    "From: root (Cron Daemon)\r\nTo: alice@example.org,\r\n  bob@example.org\r\nSubject: root\r\n\r\nroot\r\n";
	CHECK(
	    qualify_header_addresses(msg, host) ==
	    "From: root@mx.example.org (Cron Daemon)\r\nTo: alice@example.org,\r\n  bob@example.org\r\nSubject: root\r\n\r\nroot\r\n");
	CHECK(qualify_header_addresses("To: root\r\n", host) == "To: root@mx.example.org\r\n");
}

TEST_CASE("sendmail: Bcc is removed without -t too") {
	HeaderRecipients h = take_header_recipients("To: <broken\r\nBcc: x@y.example\r\n\r\nb\r\n", false);
	CHECK(h.error == "");
	CHECK(h.recipients.empty());
	CHECK(h.message == "To: <broken\r\n\r\nb\r\n");
}

TEST_CASE("address lists: groups, comments, quoted names") {
	std::string error;
	auto l = tern::message::parse_address_list("team: a@x.example, \"Last, First\" <b@x.example>; c@y.example (c)",
	                                           &error);
	REQUIRE(l);
	CHECK(*l == std::vector<std::string>{"a@x.example", "b@x.example", "c@y.example"});
	CHECK(tern::message::parse_address_list("(just a comment)", &error) == std::nullopt);
	CHECK(tern::message::parse_address_list("a@b.example, \"unterminated", &error) == std::nullopt);
}

TEST_CASE("sendmail protocol: request round trip") {
	Request req;
	req.sender = "app@example.org";
	req.full_name = "Web App";
	req.recipients = {"bob@example.org", "root"};
	req.data_size = 5;
	auto head = encode_request(req);
	REQUIRE(head);
	CHECK(*head == "sender app@example.org\nfullname Web App\nrcpt bob@example.org\nrcpt root\ndata 5\n");

	// Fed in pieces, with the message bytes after the head.
	std::string wire = *head + "hello";
	RequestReader reader(100);
	size_t used = 0;
	CHECK(reader.feed(std::string_view(wire).substr(0, 10), used) == RequestReader::State::more);
	CHECK(used == 10);
	size_t used2 = 0;
	CHECK(reader.feed(std::string_view(wire).substr(10), used2) == RequestReader::State::data);
	CHECK(wire.substr(10 + used2) == "hello");
	CHECK(reader.request().sender == req.sender);
	CHECK(reader.request().full_name == "Web App");
	CHECK(reader.request().recipients == req.recipients);
	CHECK(reader.request().data_size == 5);

	Request list;
	list.list_queue = true;
	RequestReader lr(100);
	CHECK(lr.feed(*encode_request(list), used) == RequestReader::State::list_queue);

	Request bad;
	bad.recipients = {"a@b.example\nrcpt evil@x.example"};
	CHECK_FALSE(encode_request(bad).has_value());
}

TEST_CASE("sendmail protocol: bad requests") {
	size_t used = 0;
	RequestReader big(10);
	CHECK(big.feed("rcpt a@b.example\ndata 11\n", used) == RequestReader::State::error);
	CHECK(big.too_large());
	RequestReader norcpt(100);
	CHECK(norcpt.feed("data 1\n", used) == RequestReader::State::error);
	CHECK(norcpt.error() == "no recipients");
	RequestReader unknown(100);
	CHECK(unknown.feed("hello\n", used) == RequestReader::State::error);
	RequestReader size(100);
	CHECK(size.feed("rcpt a@b.example\ndata 1x\n", used) == RequestReader::State::error);
	RequestReader long_name(100);
	CHECK(long_name.feed("fullname " + std::string(max_full_name + 1, 'a') + "\n", used) ==
	      RequestReader::State::error);
	CHECK(long_name.error() == "full name too long");
	RequestReader latin1(100);
	CHECK(latin1.feed("fullname Andr\xe9\n", used) == RequestReader::State::error);
	CHECK(latin1.error() == "full name not UTF-8");
	RequestReader name(100);
	CHECK(name.feed("fullname " + std::string(max_full_name, 'a') + "\n", used) == RequestReader::State::more);
	RequestReader longline(100);
	CHECK(longline.feed(std::string(max_line + 10, 'a'), used) == RequestReader::State::error);
	RequestReader control(100);
	CHECK(control.feed("rcpt a\x01@b.example\n", used) == RequestReader::State::error);
}

TEST_CASE("sendmail protocol: answers and exit statuses") {
	Status rs{553, "5.1.3", "bad recipient address syntax", "a b@c"};
	std::string line = format_recipient_status(rs);
	CHECK(line == "rcpt 553 5.1.3 a b@c\tbad recipient address syntax\n");
	ResponseLine r = parse_response_line(line.substr(0, line.size() - 1));
	CHECK(r.kind == ResponseLine::Kind::rcpt);
	CHECK(r.status.code == 553);
	CHECK(r.status.enhanced == "5.1.3");
	CHECK(r.status.recipient == "a b@c");
	CHECK(r.status.text == "bad recipient address syntax");

	std::string done = format_final_status({250, "2.0.0", "queued\nline", ""});
	CHECK(done == "done 250 2.0.0 queued line\n");
	ResponseLine d = parse_response_line("done 250 2.0.0 queued");
	CHECK(d.kind == ResponseLine::Kind::done);
	CHECK(d.status.text == "queued");

	CHECK(format_queue_listing("ID\n") == "queue 3\nID\n");
	ResponseLine q = parse_response_line("queue 3");
	CHECK(q.kind == ResponseLine::Kind::queue);
	CHECK(q.size == 3);
	CHECK(parse_response_line("done 99 2.0.0 x").kind == ResponseLine::Kind::invalid);
	CHECK(parse_response_line("what").kind == ResponseLine::Kind::invalid);

	CHECK(exit_status({250, "2.0.0", "", ""}) == ex_ok);
	CHECK(exit_status({451, "4.3.0", "", ""}) == ex_tempfail);
	CHECK(exit_status({452, "4.3.1", "", ""}) == ex_tempfail);
	CHECK(exit_status({553, "5.1.3", "", ""}) == ex_nouser);
	CHECK(exit_status({553, "5.1.7", "", ""}) == ex_usage);  // the -f sender's syntax
	CHECK(exit_status({550, "5.7.1", "", ""}) == ex_noperm);
	CHECK(exit_status({550, "5.6.0", "", ""}) == ex_dataerr);
	CHECK(exit_status({552, "5.3.4", "", ""}) == ex_dataerr);
	CHECK(exit_status({552, "5.2.3", "", ""}) == ex_dataerr);
	CHECK(exit_status({554, "5.5.2", "", ""}) == ex_unavailable);
}

TEST_CASE("local submission: who may send as whom") {
	auto loaded = tern::config::Config::load_text(R"({
	  "hostname": "mail.example.org",
	  "listeners": {},
	  "domains": {"example.org": {}},
	  "accounts": {"alice": {"domain": "example.org",
	    "destinations": {"alice@example.org": {"mailbox": "INBOX"}, "a.l@example.org": {"mailbox": "INBOX"}}}},
	  "postmaster": {"account": "alice"}
	})",
	                                              "tern.json", "/etc/tern");
	const tern::config::Config& cfg = *loaded;
	using tern::server::decide_local_sender;

	Request req;
	req.recipients = {"bob@example.net", "root"};
	// A user with an account: its own address by default.
	auto s = decide_local_sender(cfg, "alice", false, req);
	REQUIRE_FALSE(s.error);
	CHECK(s.account == "alice");
	CHECK(s.mail_from == "alice@example.org");
	// root@hostname has no destination: the postmaster's (alice's) mail.
	CHECK(s.recipients == std::vector<std::string>{"bob@example.net", "postmaster@mail.example.org"});
	// -f: only the account's addresses.
	req.sender = "a.l@example.org";
	CHECK_FALSE(decide_local_sender(cfg, "alice", false, req).error);
	req.sender = "boss@example.org";
	auto refused = decide_local_sender(cfg, "alice", false, req);
	REQUIRE(refused.error);
	CHECK(refused.error->code == 550);
	CHECK(refused.error->enhanced == "5.7.1");
	// Root may use any sender, and the null one; never an account.
	auto root = decide_local_sender(cfg, "root", true, req);
	CHECK_FALSE(root.error);
	CHECK(root.mail_from == "boss@example.org");
	CHECK(root.account == "");
	req.sender = "<>";
	CHECK(decide_local_sender(cfg, "root", true, req).mail_from == "");
	CHECK(decide_local_sender(cfg, "alice", false, req).error);
	// A user without an account: login@hostname, and only that.
	req.sender.reset();
	auto www = decide_local_sender(cfg, "www-data", false, req);
	CHECK_FALSE(www.error);
	CHECK(www.account == "");
	CHECK(www.mail_from == "www-data@mail.example.org");
	req.sender = "www-data";
	CHECK_FALSE(decide_local_sender(cfg, "www-data", false, req).error);
	req.sender = "alice@example.org";
	CHECK(decide_local_sender(cfg, "www-data", false, req).error);
	// A bad recipient refuses the whole message and is named.
	req.sender.reset();
	req.recipients = {"ok@example.net", "bad address@"};
	auto bad = decide_local_sender(cfg, "www-data", false, req);
	REQUIRE(bad.error);
	REQUIRE(bad.recipient_errors.size() == 1);
	CHECK(bad.recipient_errors[0].recipient == "bad address@");
	CHECK(bad.recipient_errors[0].code == 553);
}

TEST_CASE("local submission: mail for the host's own users reaches someone who reads it") {
	auto loaded = tern::config::Config::load_text(R"({
	  "hostname": "mail.example.org",
	  "listeners": {},
	  "domains": {"example.org": {}},
	  "accounts": {"alice": {"domain": "example.org",
	                         "destinations": {"alice@example.org": {"mailbox": "INBOX"}}},
	               "bob": {"domain": "example.org",
	                       "destinations": {"robert@example.org": {"mailbox": "INBOX"}}}},
	  "postmaster": {"account": "alice", "mailbox": "System"}
	})",
	                                              "tern.json", "/etc/tern");
	using tern::server::decide_local_sender;
	Request req;
	// cron's "root" and a crontab owner's login, completed with the host
	// name, which is not a hosted domain.
	req.recipients = {"root",
	                  "bob",
	                  "www-data",
	                  "ROOT@Mail.Example.Org",
	                  "postmaster",
	                  "carol@example.net",
	                  "root@example.org",
	                  "robert@example.org"};
	auto s = decide_local_sender(*loaded, "root", true, req);
	REQUIRE_FALSE(s.error);
	// root, www-data and ROOT go to the postmaster once; bob to his
	// account's own address; addresses elsewhere stay as they are (an
	// unknown user at a hosted domain is refused by the queue, as on the ports).
	CHECK(s.recipients ==
	      std::vector<std::string>{"postmaster@mail.example.org", "robert@example.org", "carol@example.net",
	                               "root@example.org"});
	CHECK(loaded->resolve_recipient("postmaster", "mail.example.org").mailbox == "System");

	// No postmaster account: nothing to send root's mail to here, so it
	// keeps its address.
	auto without = tern::config::Config::load_text(R"({
	  "hostname": "mail.example.org",
	  "listeners": {},
	  "domains": {"example.org": {}},
	  "accounts": {"alice": {"domain": "example.org", "destinations": {"alice@example.org": {}}},
	               "bob": {"domain": "example.org", "destinations": {"bob@example.org": {}}}}
	})",
	                                               "tern.json", "/etc/tern");
	req.recipients = {"root", "alice"};
	CHECK(decide_local_sender(*without, "root", true, req).recipients ==
	      std::vector<std::string>{"root@mail.example.org", "alice@example.org"});
}

TEST_CASE("local submission: generated From") {
	using tern::server::generated_from;
	CHECK(generated_from("", "a@b.example") == "From: <a@b.example>\r\n");
	CHECK(generated_from("Cron \"Daemon\"", "root@b.example") ==
	      "From: \"Cron \\\"Daemon\\\"\" <root@b.example>\r\n");
	// Beyond ASCII: an encoded word (RFC 2047), not raw 8-bit bytes.
	// The address on a line of its own, so that a line with an encoded
	// word stays within 76 characters (RFC 2047 2).
	CHECK(generated_from("\xc3\x89quipe", "a@b.example") == "From: =?UTF-8?B?w4lxdWlwZQ==?=\r\n <a@b.example>\r\n");
	std::string long_name;
	for (int i = 0; i < 21; ++i) long_name += "\xc3\xa9";  // 42 bytes: one full word
	const std::string from = generated_from(long_name, "someone.with.a.long.address@example.org");
	for (size_t start = 0; start < from.size();) {
		const size_t end = from.find("\r\n", start);
		CHECK(end - start <= 76);
		start = end + 2;
	}
}
