// The pure parts of sendmail.tern (man/sendmail.tern.8) and of the local
// submission socket it talks to: the command line, the message read from
// stdin (dot handling, CRLF, -t recipients, Bcc removal), the socket
// protocol in both directions, and the exit status for a reply. No I/O;
// unit-tested in tests/unit/test_sendmail.cpp.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tern::message::sendmail {

// sysexits.h values, the statuses sendmail(1) programs exit with.
enum Exit : int {
	ex_ok = 0,
	ex_usage = 64,
	ex_dataerr = 65,
	ex_nouser = 67,
	ex_unavailable = 69,
	ex_software = 70,
	ex_ioerr = 74,
	ex_tempfail = 75,
	ex_noperm = 77,
	ex_config = 78,
};

enum class Mode {
	deliver,     // -bm, the default: read a message, hand it to ternd
	list_queue,  // -bp, or invoked as mailq
	nothing,     // accepted for compatibility, nothing to do (-q, -bi, -I)
	smtp,        // -bs: SMTP on stdin and stdout (sendmail_smtp.h)
};

struct Args {
	Mode mode = Mode::deliver;
	std::string config_path;
	bool recipients_from_headers = false;  // -t
	bool ignore_dots = false;              // -i, -oi
	std::optional<std::string> sender;     // -f / -r, "" or "<>" = null
	std::string full_name;                 // -F
	std::vector<std::string> recipients;
	std::string error;  // set: usage error (exit ex_usage)
};

// argv without the program name; `program` is argv[0] (a basename of
// "mailq" lists the queue). Unknown options are an error; the options
// other sendmail programs know but tern has no use for are accepted and
// ignored (man/sendmail.tern.8 lists them).
Args parse_args(std::string_view program, const std::vector<std::string>& args, const std::string& default_config);

// The message from stdin as tern stores it: CRLF line ends (CR LF, a lone
// LF and a lone CR each end a line), ending at a line of a single "." unless
// `ignore_dots`. A last line without a line end gets one.
std::string normalize_message(std::string_view input, bool ignore_dots);

// A message that does not start with a header section (say `echo hi |
// sendmail.tern root`) gets an empty one, so its text stays body and tern
// adds From, Date and Message-Id; one whose header fields run straight
// into text (`printf 'Subject: x\nbody'`) gets the empty line before the
// first line that is no field. A leading mbox "From " line is dropped.
// All as other sendmail programs do.
std::string ensure_header_section(std::string message);

// A bare name ("root") completed with the host name, as local mailers do
// for what cron and mail(1) write (RFC 5321 4.1.2 paths have a domain);
// anything with a domain or a source route as it is.
std::string with_host_domain(std::string_view path, const std::string& hostname);

// Completes unqualified addresses in From, Sender, Reply-To, To and Cc
// (and their Resent- forms)
// with "@hostname", as local mailers do for what cron and old scripts
// write ("From: root (Cron Daemon)", "To: <www-data>"). Fields that need
// nothing are left byte for byte; a changed one is written unfolded. A
// header that does not parse is returned unchanged.
std::string qualify_header_addresses(const std::string& message, const std::string& hostname);

// One address-list field value with its bare local names qualified
// (comments, quoted strings and display names kept).
std::string qualify_address_list(std::string_view value, const std::string& hostname);

struct HeaderRecipients {
	std::vector<std::string> recipients;  // To, Cc, Bcc (or Resent-*) in order; bare names unqualified
	std::string message;                  // the message with every Bcc and Resent-Bcc field removed
	std::string error;                    // set: unparsable header or address list
};

// -t (RFC 5322 3.6.3): recipients from To, Cc and Bcc, or from Resent-To,
// Resent-Cc and Resent-Bcc when the message has any (RFC 5322 3.6.6). The
// Bcc and Resent-Bcc fields are removed so no recipient sees them, with or
// without -t (`collect` false: only that, no address is parsed). The
// message has CRLF line ends.
HeaderRecipients take_header_recipients(const std::string& message, bool collect = true);

// The recipients with repeats left out, first occurrence kept: an address
// named on the command line and in a header, or in To and Bcc, gets one
// copy (as sendmail(1) implementations do). The domain compares without
// case (RFC 5321 2.4), the localpart as written.
std::vector<std::string> distinct_recipients(const std::vector<std::string>& recipients);

// ---- the socket protocol (man/sendmail.tern.8 "PROTOCOL") ----
//
// Client: "mailq\n", or head lines "sender ADDR\n" (optional),
// "fullname TEXT\n" (optional), "rcpt ADDR\n" (one or more), then
// "data N\n" and exactly N message bytes. Server: one "rcpt CODE ENH
// ADDR\tTEXT\n" line per recipient, then "done CODE ENH TEXT\n"; for mailq
// "queue N\n" with N bytes of listing, then "done ...".

constexpr size_t max_line = 4096;
// A full name (-F, the socket's "fullname") longer than this is refused:
// the From field made of it must stay a header line (RFC 5322 2.1.1).
constexpr size_t max_full_name = 256;
constexpr size_t max_recipients = 1000;

struct Request {
	bool list_queue = false;
	std::optional<std::string> sender;
	std::string full_name;
	std::vector<std::string> recipients;
	uint64_t data_size = 0;
};

// The head of a request (everything before the message bytes). nullopt
// when a value holds a control character and cannot be sent.
std::optional<std::string> encode_request(const Request&);

// Reads a request head incrementally from the bytes the server receives.
class RequestReader {
public:
	enum class State { more, data, list_queue, error };
	explicit RequestReader(uint64_t max_data) : max_data_(max_data) {}
	// Consumes head bytes from `in`; `used` is how many it took (the rest,
	// once the state is `data`, are message bytes).
	State feed(std::string_view in, size_t& used);
	const Request& request() const { return request_; }
	const std::string& error() const { return error_; }
	// The data size asked for is over the limit; request().data_size
	// holds it.
	bool too_large() const { return too_large_; }

private:
	State line(std::string_view text);
	Request request_;
	std::string partial_;
	std::string error_;
	uint64_t max_data_;
	bool too_large_ = false;
	State state_ = State::more;
};

struct Status {
	int code = 0;
	std::string enhanced;  // "2.0.0"
	std::string text;
	std::string recipient;  // rcpt lines only
};

std::string format_recipient_status(const Status&);
std::string format_final_status(const Status&);
std::string format_queue_listing(std::string_view listing);

struct ResponseLine {
	enum class Kind { rcpt, done, queue, invalid } kind = Kind::invalid;
	Status status;
	uint64_t size = 0;  // queue: bytes that follow
};
// One server line without its "\n".
ResponseLine parse_response_line(std::string_view line);

// The exit status for a final reply: 2xx ex_ok, 4xx ex_tempfail, 5xx by
// enhanced code (RFC 3463): 5.1.7 (the -f sender's syntax) ex_usage, other
// 5.1.x ex_nouser, 5.6.x ex_dataerr, 5.7.x ex_noperm, 5.3.4 (too large)
// ex_dataerr, others ex_unavailable.
int exit_status(const Status&);

}  // namespace tern::message::sendmail
