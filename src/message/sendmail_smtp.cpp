// sendmail.tern -bs, see sendmail_smtp.h.
#include "message/sendmail_smtp.h"

#include <limits>
#include <utility>

#include "message/sendmail.h"
#include "smtp/parser.h"
#include "smtp/replies.h"
#include "smtp/reply.h"
#include "util/strings.h"

namespace tern::message::sendmail {

namespace se = smtp::se;

namespace {

// A data line longer than this is taken in pieces, so that a line without
// an end never grows the input beyond it.
constexpr size_t data_piece = 64 * 1024;

// The program on the other end of the pipe is local and already trusted
// with any message its user may send: commands are parsed as on the
// submission port (RFC 6409), without SMTPUTF8, which this mode does not
// announce.
const smtp::ParseMode parse_mode{.submission = true};

std::string reply(int code, std::string_view secode, std::string_view text) {
	return smtp::format_reply(code, secode, text);
}

std::string reply(const smtp::SmtpError& e) { return reply(e.code, e.secode, e.text); }

// MAIL or RCPT arguments whose path is a bare name ("TO:<root>"), with
// the host name added; the arguments as they are otherwise. RFC 5321
// paths have a domain, but local programs on the pipe write cron's and
// mail(1)'s bare names, which the other modes complete the same way
// (man/sendmail.tern.8).
std::string with_bare_name_qualified(std::string_view args, const std::string& hostname) {
	const size_t open = args.find('<');
	const size_t close = open == std::string_view::npos ? open : args.find('>', open);
	if (close == std::string_view::npos || close == open + 1) return std::string(args);
	return std::string(args.substr(0, open + 1)) +
	    with_host_domain(args.substr(open + 1, close - open - 1), hostname) + std::string(args.substr(close));
}

// Parses MAIL or RCPT arguments; a bare name is taken as at the host name.
template <class Parse>
auto parse_path_args(std::string_view args, const std::string& hostname, Parse parse) {
	auto parsed = parse(args);
	if (parsed) return parsed;
	const std::string qualified = with_bare_name_qualified(args, hostname);
	if (qualified == args) return parsed;
	auto second = parse(qualified);
	return second ? second : parsed;  // a name that is still wrong: the first error
}

StdioSmtp::Step say(std::string text) {
	StdioSmtp::Step s;
	s.reply = std::move(text);
	return s;
}

}  // namespace

StdioSmtp::StdioSmtp(std::string hostname, uint64_t max_size) : hostname_(std::move(hostname)), max_size_(max_size) {}

std::string StdioSmtp::greeting() const { return reply(220, "", hostname_ + " ESMTP tern sendmail"); }

std::string StdioSmtp::timeout_reply() const { return reply(421, se::net_other0, hostname_ + " timeout, closing"); }

void StdioSmtp::reset_transaction() {
	have_mail_ = false;
	tx_ = Transaction{};
	data_mid_line_ = false;
}

StdioSmtp::Step StdioSmtp::next(std::string& input, bool eof) {
	// The bytes taken are erased once, on the way out: erasing each line
	// as it is taken would move the rest of the input once per line.
	size_t used = 0;
	Step step = take(input, used, eof);
	input.erase(0, used);
	return step;
}

StdioSmtp::Step StdioSmtp::take(std::string_view input, size_t& used, bool eof) {
	for (;;) {
		std::string_view rest = input.substr(used);
		size_t lf = rest.find('\n');
		if (lf == std::string_view::npos) {
			if (state_ == State::data && rest.size() >= data_piece) {
				// A long data line: take all of it but a CR that may end it.
				size_t take = rest.back() == '\r' ? rest.size() - 1 : rest.size();
				std::string_view piece = rest.substr(0, take);
				// RFC 5321 4.5.2, as for a whole line.
				if (!data_mid_line_ && piece.starts_with('.')) piece.remove_prefix(1);
				used += take;
				if (!append_data(piece)) return too_large();
				data_mid_line_ = true;
				continue;
			}
			// As on the ports, a line that cannot end within the limit
			// ends the session (smtp::replies::line_too_long).
			if (state_ != State::data && rest.size() >= smtp::max_command_line) return too_long();
			if (!eof) {
				Step s;
				s.more = true;
				return s;
			}
			// The end of input: a transaction not finished is dropped, as
			// an SMTP server drops one whose connection is lost.
			Step s;
			s.quit = true;
			return s;
		}
		if (state_ != State::data && lf >= smtp::max_command_line) return too_long();
		std::string_view line = rest.substr(0, lf);
		used += lf + 1;
		if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
		if (state_ == State::data) {
			Step s = data_line(line);
			if (s.submit || !s.reply.empty()) return s;
			continue;
		}
		return command(line);
	}
}

StdioSmtp::Step StdioSmtp::too_long() {
	Step s = say(reply(smtp::replies::line_too_long()));
	s.quit = true;
	return s;
}

StdioSmtp::Step StdioSmtp::data_line(std::string_view line) {
	bool line_start = !data_mid_line_;
	data_mid_line_ = false;
	if (line_start && line == ".") {
		state_ = State::command;
		Step s;
		s.submit = std::move(tx_);
		reset_transaction();
		return s;
	}
	// RFC 5321 4.5.2: a leading dot was doubled by the client.
	if (line_start && line.starts_with('.')) line.remove_prefix(1);
	if (!append_data(line) || !append_data("\r\n")) return too_large();
	return {};
}

bool StdioSmtp::append_data(std::string_view bytes) {
	tx_.message.append(bytes);
	return tx_.message.size() <= max_size_;
}

// doc/behaviour.md D12, as on the ports: a message over the limit is
// refused at once and the session ends, rather than the rest of it read
// (RFC 1870 6.3); nothing is handed to ternd.
StdioSmtp::Step StdioSmtp::too_large() {
	reset_transaction();
	state_ = State::command;
	Step s = say(reply(smtp::replies::message_too_large(static_cast<int64_t>(max_size_))));
	s.quit = true;
	return s;
}

StdioSmtp::Step StdioSmtp::command(std::string_view line) {
	smtp::CommandLine split = smtp::split_command(line);
	std::string verb = ascii_upper(split.verb);
	std::string_view args = split.args;
	if (verb == "EHLO" || verb == "HELO") {
		// HELO takes an address literal too, unlike on the ports (RFC 5321
		// 4.1.1.1 gives it a domain only): Symfony Mailer, for one, says
		// "HELO [127.0.0.1]" on the pipe.
		smtp::Result<smtp::HelloArg> hello = smtp::parse_hello(args, true, parse_mode);
		if (!hello) return say(reply(hello.error()));
		reset_transaction();
		if (verb == "HELO") return say(reply(250, "", hostname_));
		// RFC 2920, RFC 1870, RFC 2034, RFC 6152.
		return say(reply(250, "",
		                 hostname_ + "\nPIPELINING\nSIZE " + std::to_string(max_size_) +
		                     "\nENHANCEDSTATUSCODES\n8BITMIME"));
	}
	if (verb == "MAIL") return mail(args);
	if (verb == "RCPT") return rcpt(args);
	if (verb == "DATA") {
		if (smtp::Status s = smtp::parse_no_args(args, parse_mode); !s) return say(reply(s.error()));
		if (!have_mail_) return say(reply(smtp::replies::missing_mail()));
		if (tx_.recipients.empty()) return say(reply(smtp::replies::missing_recipient()));
		state_ = State::data;
		return say(reply(smtp::replies::send_data()));
	}
	if (verb == "RSET") {
		if (smtp::Status s = smtp::parse_no_args(args, parse_mode); !s) return say(reply(s.error()));
		reset_transaction();
		return say(reply(smtp::replies::reset_done()));
	}
	if (verb == "NOOP") {
		if (smtp::Status s = smtp::parse_noop(args, parse_mode); !s) return say(reply(s.error()));
		return say(reply(smtp::replies::noop_done()));
	}
	if (verb == "QUIT") {
		if (smtp::Status e = smtp::parse_no_args(args, parse_mode); !e) return say(reply(e.error()));
		Step s = say(reply(smtp::replies::goodbye()));
		s.quit = true;
		return s;
	}
	if (verb == "VRFY" || verb == "EXPN") {
		if (smtp::Result<std::string> s = smtp::parse_vrfy(args, parse_mode); !s) return say(reply(s.error()));
		return say(reply(smtp::replies::will_not_verify(verb == "EXPN")));
	}
	if (verb == "HELP") return say(reply(smtp::replies::help()));
	if (verb == "STARTTLS" || verb == "AUTH" || verb == "BDAT")
		// A local pipe needs neither TLS nor a login: ternd knows the
		// user from the socket. RFC 5321 4.2.4: 502 for a command known
		// but not implemented here.
		return say(reply(502, se::proto_bad_cmd_or_seq1, "not available with sendmail -bs"));
	return say(reply(smtp::replies::unknown_command()));
}

StdioSmtp::Step StdioSmtp::mail(std::string_view args) {
	if (have_mail_) return say(reply(smtp::replies::already_have_mail()));
	// RFC 1870 6.1: a SIZE over the limit is refused by the parser.
	int64_t limit = max_size_ > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
	    ? std::numeric_limits<int64_t>::max()
	    : static_cast<int64_t>(max_size_);
	smtp::Result<smtp::MailArgs> m = parse_path_args(
	    args, hostname_, [&](std::string_view a) { return smtp::parse_mail(a, parse_mode, limit); });
	if (!m) return say(reply(m.error()));
	reset_transaction();
	have_mail_ = true;
	tx_.sender = m->from ? m->from->to_string() : "";
	return say(reply(smtp::replies::mail_accepted()));
}

StdioSmtp::Step StdioSmtp::rcpt(std::string_view args) {
	if (!have_mail_) return say(reply(smtp::replies::missing_mail()));
	smtp::Result<smtp::RcptArgs> r = parse_path_args(
	    args, hostname_, [](std::string_view a) { return smtp::parse_rcpt(a, parse_mode); });
	if (!r) return say(reply(r.error()));
	if (tx_.recipients.size() >= max_recipients)
		// RFC 5321 4.5.3.1.10: the client sends the rest in another transaction.
		return say(
		    reply(452, se::proto_too_many_rcpts3, "max " + std::to_string(max_recipients) + " recipients"));
	tx_.recipients.push_back(r->postmaster ? "postmaster" : r->to.to_string());
	return say(reply(smtp::replies::recipient_accepted()));
}

std::string StdioSmtp::delivered(const Status& final_status) {
	// "2.0.0" → "0.0": the class digit comes from the code.
	std::string_view secode = final_status.enhanced;
	secode = secode.size() > 2 ? secode.substr(2) : std::string_view{};
	return reply(final_status.code, secode, final_status.text);
}

}  // namespace tern::message::sendmail
