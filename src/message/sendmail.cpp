// sendmail.tern's pure parts, see sendmail.h.
#include "message/sendmail.h"

#include <cctype>
#include <charconv>
#include <cstring>
#include <set>

#include "message/header_parse.h"
#include "message/submission.h"
#include "util/strings.h"

namespace tern::message::sendmail {

namespace {

// Options taking a value ("-fADDR" or "-f ADDR"), as sendmail(1)
// programs define them; those tern ignores are listed in the man page.
bool takes_value(char c) { return std::strchr("ABCFfhLNORrVXbo", c) != nullptr; }
// Flags without a value that tern accepts and ignores: -G (gateway), -m
// (me too), -n (no aliasing), -U (initial user submission), -v (verbose).
bool ignored_flag(char c) { return std::strchr("GmnUv", c) != nullptr; }

// Each recipient argument may be an address list ("a@x,b@y",
// "Joe <j@example.com>"), as sendmail programs read it; one that does not
// parse stays whole, to be refused as an address.
void add_recipient_argument(std::vector<std::string>& recipients, const std::string& arg) {
	std::optional<std::vector<std::string>> list;
	if (arg.find_first_of(",<") != std::string::npos) list = parse_address_list(arg);
	if (list && !list->empty())
		recipients.insert(recipients.end(), list->begin(), list->end());
	else
		recipients.push_back(arg);
}

// What the options say together, once all are read.
Args check_combination(Args a) {
	// Refused here, for every mode: in -bs a name that cannot be sent would
	// otherwise turn each transaction into a temporary failure.
	if (has_ascii_control(a.full_name)) a.error = "control characters in the full name (-F)";
	if (a.full_name.size() > max_full_name)
		a.error = "full name (-F) longer than " + std::to_string(max_full_name) + " bytes";
	// It becomes UTF-8 encoded words (RFC 2047): other bytes (Latin-1)
	// would be mislabelled.
	if (!valid_utf8(a.full_name)) a.error = "full name (-F) is not UTF-8";
	if (a.mode == Mode::smtp && (!a.recipients.empty() || a.recipients_from_headers))
		a.error = "with -bs the recipients come from RCPT TO, not from the command line or -t";
	if (a.mode == Mode::deliver && a.recipients.empty() && !a.recipients_from_headers)
		a.error = "recipient addresses must be given on the command line or with -t";
	return a;
}

}  // namespace

Args parse_args(std::string_view program, const std::vector<std::string>& args, const std::string& default_config) {
	Args a;
	a.config_path = default_config;
	size_t slash = program.rfind('/');
	std::string_view base = slash == std::string_view::npos ? program : program.substr(slash + 1);
	if (base == "mailq") a.mode = Mode::list_queue;
	if (base == "newaliases") a.mode = Mode::nothing;
	size_t i = 0;
	for (; i < args.size(); ++i) {
		const std::string& arg = args[i];
		if (arg == "--") {
			++i;
			break;
		}
		if (arg.size() < 2 || arg[0] != '-') break;
		for (size_t k = 1; k < arg.size(); ++k) {
			char c = arg[k];
			if (c == 'q') {
				// -q[time], -qR…, -qS…: ternd runs its queue by itself.
				a.mode = Mode::nothing;
				break;
			}
			if (!takes_value(c)) {
				if (c == 't')
					a.recipients_from_headers = true;
				else if (c == 'i')
					a.ignore_dots = true;
				else if (c == 'I')
					a.mode = Mode::nothing;  // newaliases: tern has no aliases file
				else if (!ignored_flag(c)) {
					a.error = std::string("illegal option -- ") + c;
					return a;
				}
				continue;
			}
			std::string value;
			if (k + 1 < arg.size()) {
				value = arg.substr(k + 1);
			} else if (i + 1 < args.size()) {
				value = args[++i];
			} else {
				a.error = std::string("option requires an argument -- ") + c;
				return a;
			}
			switch (c) {
			case 'C': a.config_path = value; break;
			case 'F': a.full_name = value; break;
			case 'f':
			case 'r': a.sender = value; break;
			case 'o':
				if (value == "i") a.ignore_dots = true;
				break;
			case 'b':
				if (value == "m")
					a.mode = Mode::deliver;
				else if (value == "p")
					a.mode = Mode::list_queue;
				else if (value == "i")
					a.mode = Mode::nothing;
				else if (value == "s")
					a.mode = Mode::smtp;
				else {
					a.error = "-b" + value + " is not supported";
					return a;
				}
				break;
			default: break;  // -A -B -h -L -N -O -R -V -X: accepted, ignored
			}
			break;  // the value used the rest of this argument
		}
	}
	for (; i < args.size(); ++i) add_recipient_argument(a.recipients, args[i]);
	return check_combination(std::move(a));
}

std::string normalize_message(std::string_view input, bool ignore_dots) {
	std::string out;
	out.reserve(input.size() + input.size() / 32);
	size_t pos = 0;
	while (pos < input.size()) {
		// A line ends at CRLF, or at a bare LF or a bare CR: each is stored
		// as CRLF, as SMTP's bare newlines are (doc/behaviour.md D8).
		size_t end = input.find_first_of("\r\n", pos);
		size_t next = end == std::string_view::npos ? input.size() : end + 1;
		if (end == std::string_view::npos)
			end = input.size();
		else if (input[end] == '\r' && next < input.size() && input[next] == '\n')
			++next;
		std::string_view line = input.substr(pos, end - pos);
		// The old sendmail convention: a lone dot ends the input (-i turns
		// that off, as scripts that send arbitrary text need).
		if (!ignore_dots && line == ".") break;
		out.append(line);
		out += "\r\n";
		pos = next;
	}
	return out;
}

namespace {

bool is_field_line(std::string_view line) { return classify_field_line(line) == FieldLine::field; }

// The lines of `text` from `pos`, each without its CRLF, until an empty
// line or the end; `visit` returns false to stop.
template <class Visit>
void for_each_line_until_empty(std::string_view text, size_t pos, Visit&& visit) {
	while (pos < text.size()) {
		size_t eol = text.find("\r\n", pos);
		std::string_view line = text.substr(pos, (eol == std::string_view::npos ? text.size() : eol) - pos);
		if (line.empty() || !visit(line, pos)) return;
		if (eol == std::string_view::npos) return;
		pos = eol + 2;
	}
}

}  // namespace

std::string ensure_header_section(std::string message) {
	if (message.starts_with("From "))
		message.erase(0, message.find('\n') == std::string::npos ? message.size() : message.find('\n') + 1);
	// The header section ends at the first line that is neither a field nor
	// a field's continuation (RFC 5322 2.2.3); the empty line goes there
	// when it is missing, so the rest is the body, as Postfix's sendmail
	// takes it. A first line that is no field makes it all body.
	size_t body_at = std::string::npos;
	for_each_line_until_empty(message, 0, [&](std::string_view line, size_t pos) {
		bool continuation = pos > 0 && (line.front() == ' ' || line.front() == '\t');
		if (!continuation && !is_field_line(line)) body_at = pos;
		return body_at == std::string::npos;
	});
	if (body_at == std::string::npos) return message;
	// After fields, a field below that line means a broken header (a fold
	// without its indent), not a body: left as it is, the message is
	// refused, rather than send fields such as Bcc as text every recipient
	// reads. Text without any field before it is all body, whatever it says.
	bool field_follows = false;
	if (body_at > 0)
		for_each_line_until_empty(message, body_at, [&](std::string_view line, size_t) {
			field_follows = field_follows || is_field_line(line);
			return !field_follows;
		});
	if (!field_follows) message.insert(body_at, "\r\n");
	return message;
}

std::string with_host_domain(std::string_view path, const std::string& hostname) {
	if (path.find('@') != std::string_view::npos || path.find(':') != std::string_view::npos)
		return std::string(path);
	return std::string(path) + "@" + hostname;
}

std::string qualify_address_list(std::string_view value, const std::string& hostname) {
	// Walks the list (RFC 5322 3.4) outside quoted strings and comments,
	// one element (between top-level commas) at a time.
	std::string out;
	size_t i = 0;
	while (i <= value.size()) {
		std::string element;
		bool quoted = false, angle = false, angle_has_at = false, saw_at = false;
		int comment = 0, words = 0;
		size_t angle_close = std::string::npos, word_end = std::string::npos;
		bool in_word = false;
		for (; i < value.size(); ++i) {
			char c = value[i];
			if (quoted || comment > 0) {
				element += c;
				if (c == '\\' && i + 1 < value.size())
					element += value[++i];
				else if (quoted && c == '"')
					quoted = false;
				else if (comment > 0 && c == '(')
					++comment;
				else if (comment > 0 && c == ')')
					--comment;
				continue;
			}
			if (c == ',' && !angle) break;
			bool atext = is_ascii_alnum(c) || static_cast<unsigned char>(c) >= 0x80 ||
			    std::strchr("!#$%&'*+-/=?^_`{|}~.", c) != nullptr;
			if (atext && !in_word) ++words;
			if (in_word && !atext) word_end = element.size();
			in_word = atext;
			if (c == '"')
				quoted = true;
			else if (c == '(')
				comment = 1;
			else if (c == '<')
				angle = true;
			else if (c == '>' && angle) {
				angle = false;
				if (angle_close == std::string::npos) angle_close = element.size();
			} else if (c == '@') {
				saw_at = true;
				if (angle) angle_has_at = true;
			} else if (c == ':') {
				words = 0;  // the words so far were a group's name
				in_word = false;
				word_end = std::string::npos;
			}
			element += c;
		}
		if (in_word) word_end = element.size();
		if (angle_close != std::string::npos && !angle_has_at && angle_close > element.find('<') + 1)
			element.insert(angle_close, "@" + hostname);
		else if (angle_close == std::string::npos && !saw_at && words == 1 && word_end != std::string::npos)
			element.insert(word_end, "@" + hostname);
		out += element;
		if (i < value.size()) out += ',';
		++i;
	}
	return out;
}

std::string qualify_header_addresses(const std::string& message, const std::string& hostname) {
	auto section = parse_header_section(message);
	if (!section) return message;
	std::string out;
	for (const auto& f : section->fields) {
		std::string_view n = f.lower_name;
		if (n.starts_with("resent-")) n.remove_prefix(7);  // RFC 5322 3.6.6: the same address lists
		if (n == "from" || n == "sender" || n == "reply-to" || n == "to" || n == "cc") {
			std::string value = f.unfolded_value();
			std::string qualified = qualify_address_list(value, hostname);
			if (qualified != value) {
				out += f.name + ": " + qualified + "\r\n";
				continue;
			}
		}
		out += f.raw;
	}
	out.append(message, section->body_offset - (section->has_separator ? 2 : 0), std::string::npos);
	return out;
}

HeaderRecipients take_header_recipients(const std::string& message, bool collect) {
	HeaderRecipients r;
	std::string error;
	auto section = parse_header_section(message, &error);
	if (!section) {
		r.error = "parsing message header: " + error;
		return r;
	}
	// RFC 5322 3.6.6: each time a message is sent on, a block of Resent-
	// fields goes on top; the newest block's Resent-To, Resent-Cc and
	// Resent-Bcc name the recipients now. When it names any, those are the
	// recipients, not an older block's nor the original To, Cc and Bcc (as
	// Postfix takes them).
	const auto& fields = section->fields;
	auto resent_recipient_field = [](const std::string& name) {
		return name == "resent-to" || name == "resent-cc" || name == "resent-bcc";
	};
	size_t block_begin = 0;
	while (block_begin < fields.size() && !fields[block_begin].lower_name.starts_with("resent-")) ++block_begin;
	size_t block_end = block_begin;
	bool resent = false;
	for (; block_end < fields.size() && fields[block_end].lower_name.starts_with("resent-"); ++block_end)
		resent = resent || resent_recipient_field(fields[block_end].lower_name);
	// Header fields end before the body; a message without the empty line
	// is all header (RFC 5322 2.1).
	std::string kept;
	for (size_t i = 0; i < fields.size(); ++i) {
		const HeaderField& f = fields[i];
		bool bcc = f.lower_name == "bcc" || f.lower_name == "resent-bcc";
		bool names_recipients = resent
		    ? i >= block_begin && i < block_end && resent_recipient_field(f.lower_name)
		    : f.lower_name == "to" || f.lower_name == "cc" || f.lower_name == "bcc";
		if (collect && names_recipients) {
			auto list = parse_address_list(f.unfolded_value(), &error);
			if (!list) {
				r.error = "parsing " + f.name + " header: " + error;
				return r;
			}
			r.recipients.insert(r.recipients.end(), list->begin(), list->end());
		}
		if (!bcc) kept += f.raw;
	}
	kept.append(message, section->body_offset - (section->has_separator ? 2 : 0), std::string::npos);
	r.message = std::move(kept);
	return r;
}

std::optional<std::string> encode_request(const Request& req) {
	if (req.list_queue) return std::string("mailq\n");
	std::string out;
	if (req.sender) {
		if (has_ascii_control(*req.sender)) return std::nullopt;
		out += "sender " + *req.sender + "\n";
	}
	if (!req.full_name.empty()) {
		if (has_ascii_control(req.full_name)) return std::nullopt;
		out += "fullname " + req.full_name + "\n";
	}
	for (const auto& rc : req.recipients) {
		if (has_ascii_control(rc) || rc.empty()) return std::nullopt;
		out += "rcpt " + rc + "\n";
	}
	out += "data " + std::to_string(req.data_size) + "\n";
	return out;
}

RequestReader::State RequestReader::feed(std::string_view in, size_t& used) {
	used = 0;
	while (state_ == State::more && used < in.size()) {
		size_t nl = in.find('\n', used);
		size_t end = nl == std::string_view::npos ? in.size() : nl;
		partial_.append(in.substr(used, end - used));
		used = nl == std::string_view::npos ? in.size() : nl + 1;
		if (partial_.size() > max_line) {
			error_ = "line too long";
			return state_ = State::error;
		}
		if (nl == std::string_view::npos) break;
		std::string text = std::move(partial_);
		partial_.clear();
		state_ = line(text);
	}
	return state_;
}

RequestReader::State RequestReader::line(std::string_view text) {
	if (has_ascii_control(text)) {
		error_ = "control character in request";
		return State::error;
	}
	size_t sp = text.find(' ');
	std::string_view key = text.substr(0, sp);
	std::string_view value = sp == std::string_view::npos ? std::string_view() : text.substr(sp + 1);
	if (key == "mailq" && sp == std::string_view::npos && request_.recipients.empty()) {
		request_.list_queue = true;
		return State::list_queue;
	}
	if (key == "sender" && !request_.sender) {
		request_.sender = std::string(value);
		return State::more;
	}
	if (key == "fullname") {
		if (value.size() > max_full_name) {
			error_ = "full name too long";
			return State::error;
		}
		if (!valid_utf8(value)) {
			error_ = "full name not UTF-8";
			return State::error;
		}
		request_.full_name = std::string(value);
		return State::more;
	}
	if (key == "rcpt" && !value.empty()) {
		if (request_.recipients.size() >= max_recipients) {
			error_ = "too many recipients";
			return State::error;
		}
		request_.recipients.emplace_back(value);
		return State::more;
	}
	if (key == "data") {
		uint64_t n = 0;
		auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
		if (ec != std::errc() || p != value.data() + value.size() || value.empty()) {
			error_ = "bad data size";
			return State::error;
		}
		if (request_.recipients.empty()) {
			error_ = "no recipients";
			return State::error;
		}
		request_.data_size = n;
		if (n > max_data_) {
			too_large_ = true;
			error_ = "message too large";
			return State::error;
		}
		return State::data;
	}
	error_ = "unknown request line";
	return State::error;
}

namespace {

std::string status_words(const Status& s) {
	return std::to_string(s.code) + " " + (s.enhanced.empty() ? std::string("0.0.0") : s.enhanced);
}

// Reply texts come from the server's own checks; newlines would break
// the line protocol.
std::string one_line(std::string s) {
	for (char& c : s)
		if (c == '\n' || c == '\r' || c == '\t') c = ' ';
	return s;
}

}  // namespace

std::string format_recipient_status(const Status& s) {
	return "rcpt " + status_words(s) + " " + one_line(s.recipient) + "\t" + one_line(s.text) + "\n";
}

std::string format_final_status(const Status& s) { return "done " + status_words(s) + " " + one_line(s.text) + "\n"; }

std::string format_queue_listing(std::string_view listing) {
	return "queue " + std::to_string(listing.size()) + "\n" + std::string(listing);
}

ResponseLine parse_response_line(std::string_view line) {
	ResponseLine r;
	auto word = [&line]() {
		size_t sp = line.find(' ');
		std::string_view w = line.substr(0, sp);
		line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
		return w;
	};
	std::string_view kind = word();
	if (kind == "queue") {
		auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), r.size);
		if (ec == std::errc() && p == line.data() + line.size() && !line.empty())
			r.kind = ResponseLine::Kind::queue;
		return r;
	}
	if (kind != "rcpt" && kind != "done") return r;
	std::string_view code = word();
	int n = 0;
	auto [p, ec] = std::from_chars(code.data(), code.data() + code.size(), n);
	if (ec != std::errc() || p != code.data() + code.size() || n < 200 || n > 599) return r;
	r.status.code = n;
	r.status.enhanced = std::string(word());
	if (kind == "rcpt") {
		size_t tab = line.find('\t');
		if (tab == std::string_view::npos) return r;
		r.status.recipient = std::string(line.substr(0, tab));
		r.status.text = std::string(line.substr(tab + 1));
		r.kind = ResponseLine::Kind::rcpt;
	} else {
		r.status.text = std::string(line);
		r.kind = ResponseLine::Kind::done;
	}
	return r;
}

int exit_status(const Status& s) {
	if (s.code >= 200 && s.code < 300) return ex_ok;
	if (s.code >= 400 && s.code < 500) return ex_tempfail;
	if (s.code < 500 || s.code > 599) return ex_software;
	// RFC 3463 3.1: class.subject.detail.
	const std::string& e = s.enhanced;
	// RFC 3463 3.2 X.1.7: the sender's syntax. The only sender that can be
	// malformed is the one given with -f: a bad option (man/sendmail.tern.8).
	if (e == "5.1.7") return ex_usage;
	if (e.starts_with("5.1.")) return ex_nouser;
	// Content the message cannot have, or a size over a limit (RFC 3463
	// 5.2.3 the mailbox's, 5.3.4 the system's).
	if (e.starts_with("5.6.") || e == "5.2.3" || e == "5.3.4") return ex_dataerr;
	if (e.starts_with("5.7.")) return ex_noperm;
	return ex_unavailable;
}

std::vector<std::string> distinct_recipients(const std::vector<std::string>& recipients) {
	std::vector<std::string> out;
	std::set<std::string> seen;
	std::string localpart, domain;
	for (const std::string& r : recipients) {
		split_address(r, localpart, domain);
		if (seen.insert(localpart + "@" + ascii_lower(domain)).second) out.push_back(r);
	}
	return out;
}

}  // namespace tern::message::sendmail
