// sendmail.tern -bs: the SMTP session on stdin and stdout without I/O
// (message/sendmail_smtp.h, man/sendmail.tern.8 "SMTP ON STANDARD INPUT").
#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "message/sendmail.h"
#include "message/sendmail_smtp.h"
#include "smtp/replies.h"

using namespace tern::message::sendmail;

namespace {

constexpr uint64_t max_size = 1000;

// Runs the session on `input` until it hands over a message, needs more
// input or ends; the replies written meanwhile are concatenated.
struct Run {
	std::string replies;
	std::optional<Transaction> submitted;
	bool quit = false;
	bool more = false;
};

Run run(StdioSmtp& smtp, std::string& input, bool eof = false) {
	Run r;
	for (;;) {
		StdioSmtp::Step step = smtp.next(input, eof);
		r.replies += step.reply;
		if (step.submit) {
			r.submitted = std::move(step.submit);
			return r;
		}
		if (step.quit || step.more) {
			r.quit = step.quit;
			r.more = step.more;
			return r;
		}
	}
}

Args args_of(std::vector<std::string> args) { return parse_args("/usr/sbin/sendmail", args, "/etc/tern/tern.json"); }

}  // namespace

TEST_CASE("sendmail -bs: greeting, EHLO and HELO") {
	StdioSmtp smtp("mail.example.org", max_size);
	CHECK(smtp.greeting() == "220 mail.example.org ESMTP tern sendmail\r\n");
	// HELO with an address literal, as Symfony Mailer sends it on the pipe.
	std::string input = "EHLO app.example.org\r\nHELO app.example.org\r\nHELO [127.0.0.1]\r\n";
	Run r = run(smtp, input);
	CHECK(r.more);
	CHECK(r.replies ==
	      "250-mail.example.org\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-ENHANCEDSTATUSCODES\r\n"
	      "250 8BITMIME\r\n250 mail.example.org\r\n250 mail.example.org\r\n");
	CHECK(input.empty());
}

TEST_CASE("sendmail -bs: a pipelined transaction is handed over whole, dots unstuffed") {
	StdioSmtp smtp("mail.example.org", max_size);
	std::string input =
	    "EHLO app\r\nMAIL FROM:<app@example.org> BODY=8BITMIME\r\nRCPT TO:<bob@example.org>\r\n"
	    "rcpt to:<carol@example.net>\r\nDATA\r\nSubject: hi\r\n\r\n..leading dot\r\nline.\r\n.\r\nQUIT\r\n";
	Run r = run(smtp, input);
	REQUIRE(r.submitted);
	CHECK(r.replies.find("250 2.1.0 looking good\r\n250 2.1.0 now on the list\r\n250 2.1.0 now on the list\r\n"
	                     "354 see you at the bare dot\r\n") != std::string::npos);
	CHECK(r.submitted->sender == "app@example.org");
	CHECK(r.submitted->recipients == std::vector<std::string>{"bob@example.org", "carol@example.net"});
	CHECK(r.submitted->message == "Subject: hi\r\n\r\n.leading dot\r\nline.\r\n");
	CHECK(input == "QUIT\r\n");  // read on only after the message's reply

	CHECK(smtp.delivered({250, "2.0.0", "queued", ""}) == "250 2.0.0 queued\r\n");
	CHECK(smtp.delivered({550, "5.7.1", "must match authenticated user", ""}) ==
	      "550 5.7.1 must match authenticated user\r\n");
	Run quit = run(smtp, input);
	CHECK(quit.quit);
	CHECK(quit.replies == "221 2.0.0 okay thanks bye\r\n");
}

TEST_CASE("sendmail -bs: the null sender, LF line ends and a second transaction") {
	StdioSmtp smtp("h", max_size);
	std::string input = "MAIL FROM:<>\nRCPT TO:<postmaster>\nDATA\nbody\n.\n";
	Run r = run(smtp, input);
	REQUIRE(r.submitted);
	CHECK(r.submitted->sender == "");
	CHECK(r.submitted->recipients == std::vector<std::string>{"postmaster"});
	CHECK(r.submitted->message == "body\r\n");
	// The transaction is over: the next one starts with MAIL again.
	input = "RCPT TO:<b@example.org>\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n";
	Run next = run(smtp, input);
	CHECK(next.replies == "503 5.5.1 missing MAIL FROM\r\n250 2.1.0 looking good\r\n250 2.1.0 now on the list\r\n");
}

TEST_CASE("sendmail -bs: bare names in MAIL and RCPT are taken as at the host name, as cron writes them") {
	StdioSmtp smtp("mail.example.org", max_size);
	std::string input =
	    "MAIL FROM:<nobody>\r\nRCPT TO:<root>\r\nRCPT TO:<bob@example.net>\r\nRCPT TO:<a b>\r\n"
	    "RCPT TO:<>\r\nDATA\r\nbody\r\n.\r\n";
	Run r = run(smtp, input);
	REQUIRE(r.submitted);
	CHECK(r.submitted->sender == "nobody@mail.example.org");
	CHECK(r.submitted->recipients == std::vector<std::string>{"root@mail.example.org", "bob@example.net"});
	// A name that does not parse with the host name either keeps its first
	// error; an empty path gets no host name.
	CHECK(r.replies.find("250 2.1.0 looking good\r\n250 2.1.0 now on the list\r\n250 2.1.0 now on the list\r\n"
	                     "501 5.5.2 ") != std::string::npos);
	CHECK(r.replies.find("354 ") != std::string::npos);
}

TEST_CASE("sendmail -bs: commands out of sequence, unknown and unavailable ones") {
	StdioSmtp smtp("h", max_size);
	std::string input =
	    "DATA\r\nMAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\nDATA\r\nRSET\r\nNOOP\r\n"
	    "VRFY bob\r\nHELP\r\nSTARTTLS\r\nAUTH PLAIN\r\nBDAT 10 LAST\r\nXYZZY\r\nMAIL FROM:<bad address>\r\n";
	Run r = run(smtp, input);
	CHECK(r.more);
	std::string expected =
	    "503 5.5.1 missing MAIL FROM\r\n"
	    "250 2.1.0 looking good\r\n"
	    "503 5.5.1 already have MAIL\r\n"
	    "503 5.5.1 missing RCPT TO\r\n"
	    "250 2.0.0 all clear\r\n"
	    "250 2.0.0 alrighty\r\n"
	    "252 2.7.0 no verify but will try delivery\r\n"
	    "214 2.0.0 see rfc 5321 (smtp)\r\n"
	    "502 5.5.1 not available with sendmail -bs\r\n"
	    "502 5.5.1 not available with sendmail -bs\r\n"
	    "502 5.5.1 not available with sendmail -bs\r\n"
	    "500 5.5.1 unknown command\r\n";
	REQUIRE(r.replies.size() > expected.size());
	CHECK(r.replies.substr(0, expected.size()) == expected);
	// The parser's own syntax reply, as on the submission port.
	CHECK(r.replies.substr(expected.size()).starts_with("501 5.5."));

	// Arguments are checked as on the ports: VRFY needs one, NOOP and QUIT
	// take no garbage.
	input = "VRFY\r\nEXPN list\r\nQUIT now\r\n";
	r = run(smtp, input);
	CHECK(r.replies.starts_with("501 5.5."));
	CHECK(r.replies.find("\r\n252 2.7.0 no expand but will try delivery\r\n501 5.5.") != std::string::npos);
	CHECK(!r.quit);
}

TEST_CASE("sendmail -bs: messages over the size limit") {
	StdioSmtp smtp("h", max_size);
	std::string input = "MAIL FROM:<a@example.org> SIZE=1001\r\nMAIL FROM:<a@example.org> SIZE=1000\r\n";
	Run r = run(smtp, input);
	// doc/behaviour.md D12: below the default limit of 100 MiB the mailbox's
	// limit was reached (5.2.3), as on the ports.
	CHECK(r.replies == "552 5.2.3 message too large\r\n250 2.1.0 looking good\r\n");

	// doc/behaviour.md D12, as on the ports: data beyond the limit is
	// refused as soon as it is seen and the session ends; nothing is
	// handed over and the rest of the input is not read.
	input = "RCPT TO:<b@example.org>\r\nDATA\r\n" + std::string(600, 'x') + "\r\n" + std::string(600, 'y') +
	    "\r\n.\r\nRCPT TO:<b@example.org>\r\n";
	Run big = run(smtp, input);
	CHECK_FALSE(big.submitted);
	CHECK(big.quit);
	CHECK(big.replies ==
	      "250 2.1.0 now on the list\r\n354 see you at the bare dot\r\n552 5.2.3 message too large\r\n");
}

TEST_CASE("sendmail -bs: a data line over the size limit without an end is refused at once") {
	// A line without an LF is taken in 64 KiB pieces; the limit holds for
	// them too.
	StdioSmtp smtp("h", 100000);
	std::string input = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n" +
	    std::string(200000, 'z');
	Run r = run(smtp, input);
	CHECK_FALSE(r.submitted);
	CHECK(r.quit);
	CHECK(r.replies.ends_with("354 see you at the bare dot\r\n552 5.2.3 message too large\r\n"));
}

TEST_CASE("sendmail -bs: a command line too long ends the session, as on the ports") {
	// A line's length counts up to its LF, its CR included.
	constexpr size_t max_line = tern::smtp::max_command_line;
	const std::string too_long = "500 5.5.0 line too long, smtp max is 512, we reached 2048\r\n";
	{
		StdioSmtp smtp("h", max_size);
		std::string input = std::string(max_line - 1, 'A') + "\r\nNOOP\r\n";
		Run r = run(smtp, input);
		CHECK(r.replies == too_long);
		CHECK(r.quit);
	}
	{
		// One byte shorter is a command (an unknown one) and the session goes on.
		StdioSmtp smtp("h", max_size);
		std::string input = std::string(max_line - 2, 'A') + "\r\nNOOP\r\n";
		Run r = run(smtp, input);
		CHECK(r.replies == "500 5.5.1 unknown command\r\n250 2.0.0 alrighty\r\n");
		CHECK(!r.quit);
	}
	{
		// No line end yet: refused as soon as the line cannot end in time.
		StdioSmtp smtp("h", max_size);
		std::string input = std::string(max_line - 1, 'B');
		Run partial = run(smtp, input);
		CHECK(partial.more);
		CHECK(partial.replies.empty());
		input += "B";
		Run r = run(smtp, input);
		CHECK(r.replies == too_long);
		CHECK(r.quit);
	}
}

TEST_CASE("sendmail -bs: a long data line arrives in pieces and stays whole") {
	StdioSmtp smtp("h", 1 << 20);
	std::string input = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n";
	run(smtp, input);
	// 100 KiB without a line end, the first byte a dot: unstuffed once; a
	// lone dot later in the same line does not end the data.
	std::string line = "." + std::string(100 * 1024, 'z');
	input = line;
	Run r = run(smtp, input);
	CHECK(r.more);
	CHECK(input.size() < 64 * 1024);
	input += "\r\n.\r\n";
	Run end = run(smtp, input);
	REQUIRE(end.submitted);
	CHECK(end.submitted->message == line.substr(1) + "\r\n");
}

TEST_CASE("sendmail -bs: the end of input inside DATA hands nothing over") {
	StdioSmtp smtp("h", max_size);
	std::string input = "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\npart of a message\r\n";
	Run r = run(smtp, input, true);
	CHECK(r.quit);
	CHECK_FALSE(r.submitted);
	CHECK(smtp.timeout_reply() == "421 4.4.0 h timeout, closing\r\n");
}

TEST_CASE("sendmail args: -bs") {
	Args a = args_of({"-bs", "-i"});
	CHECK(a.error == "");
	CHECK(a.mode == Mode::smtp);
	CHECK(args_of({"-bs", "bob@example.org"}).error ==
	      "with -bs the recipients come from RCPT TO, not from the command line or -t");
	CHECK(args_of({"-bs", "-t"}).error != "");
	// A full name ternd could not be sent is a usage error at once, not a
	// 451 at every end of data.
	CHECK(args_of({"-bs", "-F", "Web\nApp"}).error == "control characters in the full name (-F)");
	CHECK(args_of({"-F", "Web\x7f", "bob@example.org"}).error == "control characters in the full name (-F)");
	CHECK(args_of({"-F", std::string(257, 'n'), "bob@example.org"}).error ==
	      "full name (-F) longer than 256 bytes");
	CHECK(args_of({"-F", std::string(256, 'n'), "bob@example.org"}).error.empty());
	CHECK(args_of({"-F", "Andr\xe9", "bob@example.org"}).error == "full name (-F) is not UTF-8");  // Latin-1
	CHECK(args_of({"-F", "Andr\xc3\xa9", "bob@example.org"}).error.empty());
}
