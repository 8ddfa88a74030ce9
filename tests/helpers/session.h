// Higher-level steps shared by the black-box tests: connect and EHLO, run a
// whole mail transaction, build test messages.
#pragma once
#include <string>
#include <vector>

#include "helpers/daemon.h"
#include "helpers/smtp_client.h"

namespace tern::testing {

// The sender every delivery test uses; sender.example has A, MX and an SPF
// record passing 127.0.0.1 in DnsServer::add_standard_zone().
inline const std::string test_sender = "bob@sender.example";
inline const std::string test_ehlo = "client.sender.example";

// Connects to the daemon's SMTP port, reads the greeting, sends EHLO.
// Check client.connected() (and the replies it stored) in the test.
SmtpClient connect_smtp(TernDaemon& daemon, const std::string& host = "127.0.0.1");
SmtpClient connect_and_ehlo(TernDaemon& daemon, const std::string& ehlo = test_ehlo);

// MAIL FROM a sender whose domain's lookups are never answered (the
// daemon's DNS server stays silent for silent.example), on a fresh
// connection after EHLO, waiting up to 20 s for the reply. Check
// client.connected() in the test.
struct SilentSenderReply {
	SmtpClient client;
	Reply reply;
	int64_t ms = 0;  // from MAIL to its reply
};
SilentSenderReply mail_from_silent_sender(TernDaemon& daemon);

// A small RFC 5322 message with CRLF line ends; body must end in CRLF.
std::string make_message(const std::string& subject = "test", const std::string& body = "Hello Alice.\r\n",
                         const std::string& from = test_sender, const std::string& to = "alice@test.example");

// RFC 5321 4.5.2 transparency: a line starting with "." gets one more.
std::string dot_stuff(const std::string& message);

// Result of a transaction: the reply of the step that ended it.
struct Transaction {
	std::string step;  // "MAIL", "RCPT", "DATA" (354 expected) or "END" (after the dot)
	Reply reply;
};

// MAIL, every RCPT, DATA, the dot-stuffed message and the final dot. Stops
// at the first MAIL/RCPT/DATA reply that is not 2xx/354.
Transaction send_mail(SmtpClient& client, const std::string& from, const std::vector<std::string>& rcpts,
                      const std::string& message);

// The header section of a stored message file, unfolded (CRLF-ended lines).
std::string delivered_header(const std::string& path);
// The value of the first field called `name` in an unfolded header
// section, without the spaces after the colon; "" when absent.
std::string header_field(const std::string& header, const std::string& name);

bool starts_with(const std::string& s, const std::string& prefix);
bool ends_with(const std::string& s, const std::string& suffix);
bool contains(const std::string& s, const std::string& needle);

}  // namespace tern::testing
