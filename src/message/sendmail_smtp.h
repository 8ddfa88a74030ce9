// sendmail.tern -bs (man/sendmail.tern.8 "SMTP ON STANDARD INPUT"): SMTP
// spoken with the calling program over its standard input and output, as
// the sendmail transports of PHP frameworks run it (`sendmail -bs`). Pure:
// input bytes in; replies and finished transactions out. sendmail.tern
// does the I/O and hands each transaction to ternd as it does a message
// read in the other modes; ternd's final status becomes the reply to the
// end of DATA. Unit-tested in tests/unit/test_sendmail_smtp.cpp.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "message/sendmail.h"

namespace tern::message::sendmail {

// One message to hand to ternd.
struct Transaction {
	std::string sender;  // MAIL FROM's path, "" for the null path <>
	std::vector<std::string> recipients;
	std::string message;  // CRLF line ends, dot-stuffing removed (RFC 5321 4.5.2)
};

class StdioSmtp {
public:
	// `max_size`: the largest message ternd takes from the socket
	// (config::Config::local_submission_max_size).
	StdioSmtp(std::string hostname, uint64_t max_size);

	// RFC 5321 4.2: the greeting, written before any input is read.
	std::string greeting() const;

	struct Step {
		std::string reply;                  // to write; may be empty
		std::optional<Transaction> submit;  // hand over, then write the reply of delivered()
		bool quit = false;                  // after writing the reply, end
		bool more = false;                  // nothing to do without more input
	};
	// Takes what it uses from the front of `input` (bytes read and not yet
	// used) and returns the next step. `eof`: no more input will come.
	Step next(std::string& input, bool eof);

	// The reply to the end of DATA, from ternd's final status.
	std::string delivered(const Status& final_status);

	// RFC 5321 4.5.3.2: what a client silent for too long gets before the end.
	std::string timeout_reply() const;

private:
	enum class State { command, data };
	// next() without the erasing: takes from `input` at `used` onwards.
	Step take(std::string_view input, size_t& used, bool eof);
	Step command(std::string_view line);
	Step too_long();
	Step mail(std::string_view args);
	Step rcpt(std::string_view args);
	Step data_line(std::string_view line);
	// Adds to the message; false when it grew over the limit.
	[[nodiscard]] bool append_data(std::string_view bytes);
	Step too_large();
	void reset_transaction();

	std::string hostname_;
	uint64_t max_size_;
	State state_ = State::command;
	bool have_mail_ = false;
	Transaction tx_;
	bool data_mid_line_ = false;  // the data line in progress was taken in pieces
};

}  // namespace tern::message::sendmail
