// DSN composition (RFC 3464, RFC 6533) and the DSN texts
// (doc/behaviour.md §12, §13, decisions 10 and 11).
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "message/dsn.h"
#include "util/base64.h"

using namespace tern::message;

namespace {

// Go's reference time: Mon Jan 2 15:04:05 -0700 2006 = 22:04:05 UTC.
constexpr std::time_t t0 = 1136239445;
const std::string boundary = "BOUNDARY";

const std::string original =
    "From: alice@example.org\r\n"
    "To: bob@remote.example\r\n"
    "Subject: hi\r\n"
    "Message-Id: <orig@example.org>\r\n"
    "\r\n";

DsnMessage failed_message() {
	DsnMessage m;
	m.from = "postmaster@mail.example";
	m.to = "alice@example.org";
	m.subject = subject_failed;
	m.message_id = "dsn1@mail.example";
	m.references = "<orig@example.org>";
	m.reporting_mta = "mail.example";
	m.arrival = t0;
	m.date = t0 + 3600;
	m.text_body = failed_dsn_text("bob@remote.example", "remote said no");
	DsnRecipient r;
	r.final_recipient = "bob@remote.example";
	r.action = "failed";
	r.status = "5.1.1";
	r.remote_mta = "mx.remote.example ([192.0.2.1])";
	r.diagnostic = "smtp; 550 5.1.1 no such user";
	r.last_attempt = t0 + 60;
	m.recipients.push_back(r);
	m.original_headers = original;
	return m;
}

// The exact bytes compose_dsn gives for failed_message(), with what a test
// changed: the address and type fields of the parts vary, the rest is the
// same for every variant.
struct WantedFailedDsn {
	std::string to = "alice@example.org";
	std::string text_type = "text/plain";
	std::string status_type = "message/delivery-status";
	std::string headers_type = "text/rfc822-headers";
	std::string encoding = "7BIT";  // of all three parts
	std::string recipient = "bob@remote.example";
	std::string final_recipient = "rfc822;bob@remote.example";
	std::string error = "remote said no";
	std::string headers = original;
};

std::string wanted_failed_dsn(const WantedFailedDsn& w) {
	return "From: <postmaster@mail.example>\r\n"
	       "To: <" +
	    w.to +
	    ">\r\n"
	    "Subject: mail delivery failed\r\n"
	    "Message-Id: <dsn1@mail.example>\r\n"
	    "References: <orig@example.org>\r\n"
	    "Date: 2 Jan 2006 23:04:05 +0000\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=\"delivery-status\"; boundary=\"BOUNDARY\"\r\n"
	    "\r\n"
	    "--BOUNDARY\r\n"
	    "Content-Type: " +
	    w.text_type + "\r\nContent-Transfer-Encoding: " + w.encoding +
	    "\r\n"
	    "\r\n"
	    "\r\n"
	    "Delivery has failed permanently for your email to:\r\n"
	    "\r\n"
	    "\t" +
	    w.recipient +
	    "\r\n"
	    "\r\n"
	    "No further deliveries will be attempted.\r\n"
	    "\r\n"
	    "Error during the last delivery attempt:\r\n"
	    "\r\n"
	    "\t" +
	    w.error +
	    "\r\n"
	    "\r\n"
	    "--BOUNDARY\r\n"
	    "Content-Type: " +
	    w.status_type + "\r\nContent-Transfer-Encoding: " + w.encoding +
	    "\r\n"
	    "\r\n"
	    "Reporting-MTA: dns; mail.example\r\n"
	    "Arrival-Date: 2 Jan 2006 22:04:05 +0000\r\n"
	    "\r\n"
	    "Final-Recipient: " +
	    w.final_recipient +
	    "\r\n"
	    "Action: failed\r\n"
	    "Status: 5.1.1\r\n"
	    "Remote-MTA: dns; mx.remote.example ([192.0.2.1])\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"
	    "Last-Attempt-Date: 2 Jan 2006 22:05:05 +0000\r\n"
	    "\r\n"
	    "--BOUNDARY\r\n"
	    "Content-Type: " +
	    w.headers_type + "\r\nContent-Transfer-Encoding: " + w.encoding + "\r\n\r\n" + w.headers +
	    "\r\n"
	    "--BOUNDARY--\r\n";
}

// Every line ends in CRLF, none longer than 998 octets (RFC 5322 2.1.1).
void check_lines(const std::string& msg) {
	REQUIRE(msg.ends_with("\r\n"));
	size_t start = 0;
	while (start < msg.size()) {
		size_t lf = msg.find('\n', start);
		REQUIRE(lf != std::string::npos);
		CHECK(lf > start);
		CHECK(msg[lf - 1] == '\r');
		CHECK(lf - 1 - start <= 998);
		CHECK(msg.substr(start, lf - 1 - start).find('\r') == std::string::npos);
		start = lf + 1;
	}
}

std::vector<std::string> header_names(const std::string& section) {
	std::vector<std::string> out;
	size_t start = 0;
	while (start < section.size()) {
		size_t end = section.find("\r\n", start);
		std::string line = section.substr(start, end - start);
		if (!line.empty() && line[0] != ' ' && line[0] != '\t') out.push_back(line.substr(0, line.find(':')));
		start = end + 2;
	}
	return out;
}

}  // namespace

TEST_CASE("dsn: failed DSN with one recipient, exact bytes") {
	std::string got = compose_dsn(failed_message(), false, boundary);
	std::string want = wanted_failed_dsn({});
	CHECK(got == want);
	check_lines(got);
	// The UTF-8 variant is never used for a message that did not need SMTPUTF8.
	CHECK(compose_dsn(failed_message(), true, boundary) == want);
}

TEST_CASE("dsn: incoming failure DSN with two recipients, exact bytes") {
	DsnMessage m;
	m.from = "postmaster@example.org";
	m.to = "sender@remote.example";
	m.subject = subject_incoming_failure;
	m.message_id = "dsn2@mail.example";
	m.reporting_mta = "mail.example";
	m.received_from_mta = received_from_mta_value("client.remote.example", "[192.0.2.7]");
	m.arrival = t0;
	m.date = t0;
	m.tz_offset_s = -7 * 3600;
	m.text_body = incoming_failure_text({
	    {"nouser@example.org", "no such user", true},
	    {"full@example.org", "mailbox full, try later", false},
	});
	m.recipients.push_back({"nouser@example.org", "failed", "5.1.1", "", "", "", t0, 0});
	m.recipients.push_back({"full@example.org", "failed", "4.2.2", "", "", "", t0, 0});
	m.original_headers = "Subject: x\r\n";  // no empty line: one is not added
	std::string got = compose_dsn(m, false, boundary);
	std::string want =
	    "From: <postmaster@example.org>\r\n"
	    "To: <sender@remote.example>\r\n"
	    "Subject: mail delivery failure\r\n"
	    "Message-Id: <dsn2@mail.example>\r\n"
	    "Date: 2 Jan 2006 15:04:05 -0700\r\n"
	    "Auto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=\"delivery-status\"; boundary=\"BOUNDARY\"\r\n"
	    "\r\n"
	    "--BOUNDARY\r\n"
	    "Content-Type: text/plain\r\n"
	    "Content-Transfer-Encoding: 7BIT\r\n"
	    "\r\n"
	    "Multiple delivery failures occurred.\r\n"
	    "\r\n"
	    "Permanent delivery failure to:\r\n"
	    "\r\n"
	    "\tnouser@example.org\r\n"
	    "\r\n"
	    "Error:\r\n"
	    "\r\n"
	    "\tno such user\r\n"
	    "\r\n"
	    "Transient delivery failure to:\r\n"
	    "\r\n"
	    "\tfull@example.org\r\n"
	    "\r\n"
	    "Error:\r\n"
	    "\r\n"
	    "\tmailbox full, try later\r\n"
	    "\r\n"
	    "\r\n"
	    "--BOUNDARY\r\n"
	    "Content-Type: message/delivery-status\r\n"
	    "Content-Transfer-Encoding: 7BIT\r\n"
	    "\r\n"
	    "Reporting-MTA: dns; mail.example\r\n"
	    "Received-From-MTA: dns;client.remote.example ([192.0.2.7])\r\n"
	    "Arrival-Date: 2 Jan 2006 15:04:05 -0700\r\n"
	    "\r\n"
	    "Final-Recipient: rfc822;nouser@example.org\r\n"
	    "Action: failed\r\n"
	    "Status: 5.1.1\r\n"
	    "Last-Attempt-Date: 2 Jan 2006 15:04:05 -0700\r\n"
	    "\r\n"
	    "Final-Recipient: rfc822;full@example.org\r\n"
	    "Action: failed\r\n"
	    "Status: 4.2.2\r\n"
	    "Last-Attempt-Date: 2 Jan 2006 15:04:05 -0700\r\n"
	    "\r\n"
	    "--BOUNDARY\r\n"
	    "Content-Type: text/rfc822-headers\r\n"
	    "Content-Transfer-Encoding: 7BIT\r\n"
	    "\r\n"
	    "Subject: x\r\n"
	    "\r\n"
	    "--BOUNDARY--\r\n";
	CHECK(got == want);
	check_lines(got);
}

TEST_CASE("dsn: incoming failure text puts the recipient first (doc/behaviour.md D10)") {
	CHECK(incoming_failure_text({{"a@example.org", "no such user", true}}) ==
	      "Permanent delivery failure to:\n\n\ta@example.org\n\nError:\n\n\tno such user\n\n");
	CHECK(incoming_failure_text({{"a@example.org", "later", false}}) ==
	      "Transient delivery failure to:\n\n\ta@example.org\n\nError:\n\n\tlater\n\n");
	CHECK(incoming_failure_text({}) == "");
	CHECK(std::string(subject_failed) == "mail delivery failed");
	CHECK(std::string(subject_delayed) == "mail delivery delayed");
	CHECK(std::string(subject_incoming_failure) == "mail delivery failure");
}

TEST_CASE("dsn: failed and delayed texts") {
	CHECK(failed_dsn_text("bob@remote.example", "connection refused") ==
	      "\nDelivery has failed permanently for your email to:\n\n\tbob@remote.example\n\n"
	      "No further deliveries will be attempted.\n\n"
	      "Error during the last delivery attempt:\n\n\tconnection refused\n");
	CHECK(failed_dsn_text("bob@remote.example", "remote error", {"550-5.1.1 first", "550 5.1.1 second"}) ==
	      "\nDelivery has failed permanently for your email to:\n\n\tbob@remote.example\n\n"
	      "No further deliveries will be attempted.\n\n"
	      "Error during the last delivery attempt:\n\n\tremote error\n"
	      "\nFull SMTP response:\n\n\t550-5.1.1 first\n\t550 5.1.1 second\n");

	// The queue's real schedule after the 5th attempt: 2 h, then 4 h, then
	// 8 h later, with a few seconds of jitter (doc/behaviour.md D11).
	std::time_t now = t0;
	std::vector<std::time_t> next = {now + 2 * 3600 + 4, now + 6 * 3600 - 9, now + 14 * 3600 + 20};
	CHECK(delayed_dsn_text("bob@remote.example", "451 try later", next, now) ==
	      "\nDelivery has been delayed of your email to:\n\n\tbob@remote.example\n\n"
	      "Next attempts to deliver: in 2 hours, 6 hours and 14 hours.\n"
	      "If these attempts all fail, you will receive a notice.\n\n"
	      "Error during the last delivery attempt:\n\n\t451 try later\n");
	CHECK(delayed_dsn_text("b@r.example", "e", {now + 3600, now + 3 * 3600}, now, true, {"451 4.2.0 later"}) ==
	      "\nDelivery has been delayed of your email to:\n\n\tb@r.example\n\n"
	      "Next attempts to deliver: in 1 hour and 3 hours.\n"
	      "If these attempts all fail, you will receive a notice.\n\n"
	      "Error during the last delivery attempt:\n\n\te\n"
	      "\nFull SMTP response:\n\n\t451 4.2.0 later\n");
	CHECK(delayed_dsn_text("b@r.example", "e", {now + 450}, now) ==
	      "\nDelivery has been delayed of your email to:\n\n\tb@r.example\n\n"
	      "Next attempt to deliver: in 8 minutes.\n"
	      "If this attempt fails, you will receive a notice.\n\n"
	      "Error during the last delivery attempt:\n\n\te\n");
	// NOTIFY=DELAY without FAILURE (RFC 3461 4.1): no failure notice is promised.
	CHECK(delayed_dsn_text("b@r.example", "e", {now + 450}, now, false) ==
	      "\nDelivery has been delayed of your email to:\n\n\tb@r.example\n\n"
	      "Next attempt to deliver: in 8 minutes.\n"
	      "If this attempt fails, no notice will follow: none was asked for on failure.\n\n"
	      "Error during the last delivery attempt:\n\n\te\n");
	CHECK(delayed_dsn_text("b@r.example", "e", {}, now) ==
	      "\nDelivery has been delayed of your email to:\n\n\tb@r.example\n\n"
	      "No further delivery attempts are scheduled.\n\n"
	      "Error during the last delivery attempt:\n\n\te\n");

	CHECK(describe_delay(0) == "1 second");
	CHECK(describe_delay(1) == "1 second");
	CHECK(describe_delay(16) == "16 seconds");
	CHECK(describe_delay(112) == "112 seconds");
	CHECK(describe_delay(120) == "2 minutes");
	CHECK(describe_delay(26 * 60 + 40) == "27 minutes");
	CHECK(describe_delay(59 * 60) == "59 minutes");
	CHECK(describe_delay(3600 - 20) == "1 hour");
	CHECK(describe_delay(3600 + 3 * 60) == "1 hour");  // within 5%
	CHECK(describe_delay(3600 + 20 * 60) == "1 hour 20 minutes");
	CHECK(describe_delay(2 * 3600 - 72) == "2 hours");  // the queue's 1% jitter
	CHECK(describe_delay(6 * 3600 + 216) == "6 hours");
	CHECK(describe_delay(3 * 3600 + 7 * 60) == "3 hours");
	CHECK(describe_delay(2 * 3600 + 30 * 60) == "2 hours 30 minutes");
	CHECK(describe_delay(16 * 3600) == "16 hours");
}

TEST_CASE("dsn: delayed DSN status fields") {
	DsnMessage m = failed_message();
	m.subject = subject_delayed;
	m.recipients[0].action = "delayed";
	m.recipients[0].status = "";  // defaulted: 4.0.0
	m.recipients[0].status_comment = "451 try later";
	m.recipients[0].diagnostic = "451 4.3.0 try later";    // "smtp; " added
	m.recipients[0].remote_mta = "dns;mx.remote.example";  // prefix not doubled
	m.recipients[0].will_retry_until = t0 + 28 * 3600;
	std::string got = compose_dsn(m, false, boundary);
	CHECK(got.find("Subject: mail delivery delayed\r\n") != std::string::npos);
	CHECK(got.find("\r\n\r\nFinal-Recipient: rfc822;bob@remote.example\r\n"
	               "Action: delayed\r\n"
	               "Status: 4.0.0 (451 try later)\r\n"
	               "Remote-MTA: dns;mx.remote.example\r\n"
	               "Diagnostic-Code: smtp; 451 4.3.0 try later\r\n"
	               "Last-Attempt-Date: 2 Jan 2006 22:05:05 +0000\r\n"
	               "Will-Retry-Until: 4 Jan 2006 02:04:05 +0000\r\n"
	               "\r\n--BOUNDARY\r\n") != std::string::npos);
	check_lines(got);

	m.recipients[0].action = "failed";
	m.recipients[0].status = "";
	CHECK(compose_dsn(m, false, boundary).find("Status: 5.0.0 (451 try later)\r\n") != std::string::npos);
}

TEST_CASE("dsn: UTF-8 variant (RFC 6533)") {
	DsnMessage m = failed_message();
	m.smtputf8 = true;
	m.to = "jöhn@bücher.example";
	m.recipients[0].final_recipient = "bøb@bücher.example";
	m.text_body = failed_dsn_text("bøb@bücher.example", "no");
	m.original_headers = "From: jöhn@bücher.example\r\nSubject: ünïcode\r\n\r\n";
	std::string got = compose_dsn(m, true, boundary);
	CHECK(got ==
	      wanted_failed_dsn({.to = "jöhn@bücher.example",
	                         .text_type = "text/plain; charset=utf-8",
	                         .status_type = "message/global-delivery-status",
	                         .headers_type = "message/global-headers",
	                         .encoding = "8BIT",
	                         .recipient = "bøb@bücher.example",
	                         .final_recipient = "utf-8;bøb@bücher.example",
	                         .error = "no",
	                         .headers = m.original_headers}));
	check_lines(got);
}

namespace {
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

// A remote server's reply is free text: in the 7bit status part whatever
// is not ASCII is RFC 6533 3's \x{HEX}; in the UTF-8 variant only a byte
// that is no UTF-8 (as U+FFFD) and control characters are.
TEST_CASE("dsn: a reply that is not ASCII stays out of the 7bit status part") {
	DsnMessage m = failed_message();
	m.recipients[0].diagnostic = "550 5.1.1 Empf\xC3\xA4nger unbekannt \xFF\x01\tend";
	m.recipients[0].status_comment = "r\xC3\xA9ponse";
	std::string ascii = compose_dsn(m, false, boundary);
	INFO(ascii);
	CHECK(has(ascii, "Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: 7BIT\r\n"));
	CHECK(has(ascii, "\r\nDiagnostic-Code: smtp; 550 5.1.1 Empf\\x{E4}nger unbekannt \\x{FFFD}\\x{1}\tend\r\n"));
	CHECK(has(ascii, "\r\nStatus: 5.1.1 (r\\x{E9}ponse)\r\n"));
	std::string status_part = ascii.substr(ascii.find("message/delivery-status"));
	status_part = status_part.substr(0, status_part.find("--" + boundary));
	for (char c : status_part) CHECK(static_cast<unsigned char>(c) < 0x80);

	m.smtputf8 = true;  // the UTF-8 variant is for SMTPUTF8 messages only
	std::string utf8 = compose_dsn(m, true, boundary);
	CHECK(has(utf8, "\r\nDiagnostic-Code: smtp; 550 5.1.1 Empf\xC3\xA4nger unbekannt \\x{FFFD}\\x{1}\tend\r\n"));
	check_lines(ascii);
	check_lines(utf8);
}

// The text part of `m` composed in the UTF-8 variant or not.
static std::string text_part_of(DsnMessage m, bool utf8) {
	m.smtputf8 = utf8;
	std::string got = compose_dsn(m, utf8, boundary);
	std::string text_part = got.substr(got.find("Content-Type: text/plain"));
	return text_part.substr(0, text_part.find("--" + boundary));
}

TEST_CASE("dsn: control characters of a remote reply are shown as ? in the text part") {
	DsnMessage m = failed_message();
	m.text_body += "\n550 5.1.1 unknown <\x1b[31m> \x7f\x01\xc2\x9b\tend \xc3\xa4\n";
	std::string utf8 = text_part_of(m, true), ascii = text_part_of(m, false);
	CHECK(has(utf8, "\r\n550 5.1.1 unknown <?[31m> ???\tend \xc3\xa4\r\n"));
	// quoted-printable for its UTF-8
	CHECK(has(ascii, "\r\n550 5.1.1 unknown <?[31m> ???\tend =C3=A4\r\n"));
}

TEST_CASE("dsn: a bare CR, bytes that are no UTF-8 and bidi overrides in a remote reply are ? in the text part") {
	// A bare CR is a line end to some readers (a forged line in the notice);
	// 0xFF 0xFE are no UTF-8, and the part says charset=utf-8; U+202E
	// shows what follows it reversed. Line ends the text already has (LF,
	// CR LF) stay.
	DsnMessage m = failed_message();
	m.text_body +=
	    "\n550 5.1.1 Subject: injected\r header \xff\xfe end\r\nnext \xe2\x80\xae"
	    "dlrow\n";
	for (bool utf8 : {false, true}) {
		std::string text_part = text_part_of(m, utf8);
		INFO(text_part);
		CHECK(has(text_part, "\r\n550 5.1.1 Subject: injected? header ?? end\r\nnext ?dlrow\r\n"));
		CHECK_FALSE(has(text_part, "=FF"));
	}
}

TEST_CASE("dsn: a remote reply longer than a line may be is wrapped, not copied as one line") {
	// RFC 5322 2.1.1: 998 characters a line, in every part of both variants.
	DsnMessage m = failed_message();
	std::string reply = "550 5.1.1 " + std::string(3000, 'L') + " \xC3\xA4" + std::string(1500, 'M');
	m.recipients[0].diagnostic = reply;
	m.text_body += "\n" + reply + "\n";
	for (bool utf8 : {false, true}) {
		m.smtputf8 = utf8;
		std::string got = compose_dsn(m, utf8, boundary);
		INFO(got);
		check_lines(got);
		CHECK(has(got, "Content-Transfer-Encoding: QUOTED-PRINTABLE\r\n"));
		// The diagnostic is folded between pieces of its long words; all of it is there.
		size_t d = got.find("Diagnostic-Code: ");
		std::string field = got.substr(d, got.find("\r\nLast-Attempt-Date", d) - d);
		std::string joined;
		for (char c : field)
			if (c != '\r' && c != '\n' && c != '\t' && c != ' ') joined += c;
		CHECK(joined.find(std::string(3000, 'L')) != std::string::npos);
		CHECK(joined.find(std::string(1500, 'M')) != std::string::npos);
	}
}

TEST_CASE("dsn: SMTPUTF8 original for an ASCII receiver") {
	DsnMessage m = failed_message();
	m.smtputf8 = true;
	m.to = "jöhn@bücher.example";
	m.recipients[0].final_recipient = "bøb+x@bücher.example";
	m.text_body = "to bøb\n";
	std::string headers = "From: jöhn@bücher.example\r\nSubject: " + std::string(60, 'x') + "\r\n\r\n";
	m.original_headers = headers;
	std::string got = compose_dsn(m, false, boundary);
	check_lines(got);
	// Addresses with A-labels; the UTF-8 localpart stays (nothing else can
	// name the mailbox).
	CHECK(got.find("To: <jöhn@xn--bcher-kva.example>\r\n") != std::string::npos);
	// The text is quoted-printable UTF-8.
	CHECK(got.find("--BOUNDARY\r\nContent-Type: text/plain; charset=utf-8\r\n"
	               "Content-Transfer-Encoding: QUOTED-PRINTABLE\r\n\r\n"
	               "to b=C3=B8b\r\n\r\n--BOUNDARY\r\n") != std::string::npos);
	// RFC 6533 3: utf-8-addr-xtext, "+" encoded too.
	CHECK(got.find("\r\nFinal-Recipient: utf-8;b\\x{F8}b\\x{2B}x@xn--bcher-kva.example\r\n") != std::string::npos);
	CHECK(got.find("message/delivery-status\r\nContent-Transfer-Encoding: 7BIT\r\n") != std::string::npos);
	// The header section in base64, 76-character lines.
	std::string b64 = tern::base64_encode(headers);
	REQUIRE(b64.size() > 76);
	std::string want_part =
	    "--BOUNDARY\r\nContent-Type: text/rfc822-headers; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: BASE64\r\n\r\n" +
	    b64.substr(0, 76) + "\r\n" + b64.substr(76) + "\r\n\r\n--BOUNDARY--\r\n";
	CHECK(got.ends_with(want_part));
	// Everything outside the header fields is 7-bit.
	std::string body = got.substr(got.find("\r\n\r\n"));
	for (unsigned char c : body.substr(0, body.find("Final-Recipient"))) CHECK(c < 0x80);
}

TEST_CASE("dsn: RFC 3464 field syntax and line limits") {
	DsnMessage m = failed_message();
	m.received_from_mta = "dns;client.example ([192.0.2.9])";
	m.recipients[0].will_retry_until = t0 + 100;
	// A long folded original header is copied raw (it is already folded).
	std::string folded = "X-Long: " + std::string(70, 'a');
	for (int i = 0; i < 30; i++) folded += "\r\n\t" + std::string(70, 'b');
	folded += "\r\n";
	m.original_headers = "Subject: x\nX-Bare-LF: y\n" + folded + "\r\n";
	// A long diagnostic is folded at spaces.
	std::string diag = "smtp; 550 5.7.1";
	for (int i = 0; i < 20; i++) diag += " word" + std::to_string(i);
	m.recipients[0].diagnostic = diag;
	std::string got = compose_dsn(m, false, boundary);
	check_lines(got);

	size_t head_end = got.find("\r\n\r\n");
	CHECK(header_names(got.substr(0, head_end + 2)) ==
	      std::vector<std::string>{"From", "To", "Subject", "Message-Id", "References", "Date", "Auto-Submitted",
	                               "MIME-Version", "Content-Type"});
	size_t status_start = got.find("Reporting-MTA:");
	size_t status_end = got.find("\r\n--BOUNDARY", status_start);
	std::string status = got.substr(status_start, status_end - status_start);
	size_t per_rcpt = status.find("\r\n\r\n");
	REQUIRE(per_rcpt != std::string::npos);
	CHECK(header_names(status.substr(0, per_rcpt + 2)) ==
	      std::vector<std::string>{"Reporting-MTA", "Received-From-MTA", "Arrival-Date"});
	CHECK(header_names(status.substr(per_rcpt + 4)) ==
	      std::vector<std::string>{"Final-Recipient", "Action", "Status", "Remote-MTA", "Diagnostic-Code",
	                               "Last-Attempt-Date", "Will-Retry-Until"});
	CHECK(status.find("Received-From-MTA: dns;client.example ([192.0.2.9])\r\n") != std::string::npos);
	// Folded: each continuation line starts with a TAB; unfolded it is the
	// value with single spaces.
	size_t d = status.find("Diagnostic-Code: ");
	std::string diag_field = status.substr(d, status.find("\r\nLast-Attempt-Date") - d);
	CHECK(diag_field.find("\r\n\t") != std::string::npos);
	std::string unfolded;
	for (size_t i = 0; i < diag_field.size(); i++) {
		if (diag_field.compare(i, 3, "\r\n\t") == 0) {
			unfolded += ' ';
			i += 2;
		} else {
			unfolded += diag_field[i];
		}
	}
	CHECK(unfolded == "Diagnostic-Code: " + diag);

	// Bare LF in the original header section written as CRLF, the rest raw.
	CHECK(got.find("Content-Transfer-Encoding: 7BIT\r\n\r\nSubject: x\r\nX-Bare-LF: y\r\n" + folded +
	               "\r\n\r\n--BOUNDARY--\r\n") != std::string::npos);

	// An original line over 998 octets cannot be copied: base64 instead.
	m.original_headers = "X-Huge: " + std::string(1200, 'z') + "\r\n\r\n";
	got = compose_dsn(m, false, boundary);
	check_lines(got);
	CHECK(got.find("Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: BASE64\r\n") !=
	      std::string::npos);

	// Without original headers: two parts.
	m.original_headers = "";
	got = compose_dsn(m, false, boundary);
	CHECK(got.find("rfc822-headers") == std::string::npos);
	CHECK(got.ends_with("Will-Retry-Until: 2 Jan 2006 22:05:45 +0000\r\n\r\n--BOUNDARY--\r\n"));
}

TEST_CASE("dsn: random boundary and required parts") {
	DsnMessage m = failed_message();
	std::string a = compose_dsn(m, false);
	std::string b = compose_dsn(m, false);
	CHECK(a != b);
	size_t p = a.find("boundary=\"");
	REQUIRE(p != std::string::npos);
	std::string bd = a.substr(p + 10, a.find('"', p + 10) - p - 10);
	CHECK(bd.size() == 60);
	CHECK(a.find("\r\n--" + bd + "\r\nContent-Type: message/delivery-status") != std::string::npos);
	CHECK(a.ends_with("\r\n--" + bd + "--\r\n"));
	check_lines(a);

	m.date = 0;  // now
	CHECK(compose_dsn(m, false, boundary).find("\r\nDate: ") != std::string::npos);

	DsnMessage no_id = failed_message();
	no_id.message_id = "";
	CHECK_THROWS_AS(compose_dsn(no_id, false, boundary), std::invalid_argument);
	DsnMessage no_rcpt = failed_message();
	no_rcpt.recipients.clear();
	CHECK_THROWS_AS(compose_dsn(no_rcpt, false, boundary), std::invalid_argument);
}

TEST_CASE("dsn: DSN extension fields, success actions and the returned message (RFC 3461 6, RFC 3464 2)") {
	const std::string boundary = "BOUNDARY";
	DsnMessage m = failed_message();
	m.envid = "QQ314159";
	m.recipients[0].original_recipient = "rfc822;Bob@Remote.example";
	std::string got = compose_dsn(m, false, boundary);
	check_lines(got);
	// RFC 3464 2.2.1 before Reporting-MTA; 2.3.1 before Final-Recipient.
	CHECK(got.find("Original-Envelope-Id: QQ314159\r\nReporting-MTA: dns; mail.example\r\n") != std::string::npos);
	CHECK(got.find("\r\n\r\nOriginal-Recipient: rfc822;Bob@Remote.example\r\n"
	               "Final-Recipient: rfc822;bob@remote.example\r\n") != std::string::npos);
	CHECK(got.find("Remote-MTA: dns; mx.remote.example ([192.0.2.1])\r\n") != std::string::npos);
	CHECK(got.find("\r\nAuto-Submitted: auto-replied\r\n") != std::string::npos);

	// A UTF-8 original recipient: utf-8-addr-xtext in the 7bit part, as is
	// in message/global-delivery-status (RFC 6533 3).
	m.smtputf8 = true;
	m.recipients[0].original_recipient = "utf-8;j\xc3\xb6rg@example.com";
	got = compose_dsn(m, false, boundary);
	CHECK(got.find("Original-Recipient: utf-8;j\\x{F6}rg@example.com\r\n") != std::string::npos);
	got = compose_dsn(m, true, boundary);
	CHECK(got.find("Original-Recipient: utf-8;j\xc3\xb6rg@example.com\r\n") != std::string::npos);
	// Control characters (a record written before RCPT refused them) are
	// escaped, never a line of their own.
	m.recipients[0].original_recipient = "rfc822;a\r\nX-Evil: yes";
	for (bool utf8 : {false, true}) {
		got = compose_dsn(m, utf8, boundary);
		CHECK(got.find("Original-Recipient: rfc822;a\\x{D}\\x{A}X-Evil: yes\r\n") != std::string::npos);
		CHECK(got.find("\nX-Evil") == std::string::npos);
	}

	// RET=FULL: the whole message as message/rfc822 instead of the headers.
	m = failed_message();
	m.original_message = original + "the body\r\n.line\r\n";
	got = compose_dsn(m, false, boundary);
	check_lines(got);
	CHECK(got.find("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7BIT\r\n\r\n" + original +
	               "the body\r\n.line\r\n\r\n--BOUNDARY--\r\n") != std::string::npos);
	CHECK(got.find("text/rfc822-headers") == std::string::npos);
	m.original_message = original + "gr\xc3\xbc\xc3\x9f\r\n";
	CHECK(compose_dsn(m, false, boundary)
	          .find("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8BIT\r\n") != std::string::npos);

	// Success notices: "delivered" and "relayed" with 2.0.0.
	m = failed_message();
	m.recipients[0].action = "relayed";
	m.recipients[0].status = "";
	m.recipients[0].diagnostic = "";
	m.text_body = success_dsn_text("bob@remote.example", true, "mx.remote.example");
	got = compose_dsn(m, false, boundary);
	CHECK(got.find("Action: relayed\r\nStatus: 2.0.0\r\n") != std::string::npos);
	CHECK(got.find("was relayed to mx.remote.example, which does not offer delivery status notifications") !=
	      std::string::npos);
	CHECK(success_dsn_text("bob@remote.example", false, "") ==
	      "\nYour email was delivered to:\n\n\tbob@remote.example\n");
}
