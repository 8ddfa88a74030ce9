#include "queue/outbound_util.h"

#include <algorithm>
#include <ctime>

#include "util/strings.h"

namespace tern::queue {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// RFC 3463 2: class "." subject "." detail, 1-3 digits each after the class.
size_t enhanced_code_length(std::string_view text, char reply_class)
{
	if (text.size() < 5 || text[0] != reply_class || text[1] != '.')
		return 0;
	size_t i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < text.size() && is_digit(text[i]) && i - start < 3)
			i++;
		if (i == start)
			return 0;
		if (part == 0) {
			if (i >= text.size() || text[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < text.size() && text[i] != ' ')
		return 0;
	return i;
}

}  // namespace

std::string Reply::text() const
{
	if (lines.empty())
		return "";
	std::string_view first = lines[0];
	if (!enhanced.empty()) {
		first.remove_prefix(enhanced.size());
		first = trim(first);
	}
	return std::string(first);
}

std::string Reply::summary() const
{
	std::string s = std::to_string(code);
	if (!enhanced.empty())
		s += " " + enhanced;
	std::string t = text();
	if (!t.empty())
		s += " " + t;
	return s;
}

bool ReplyParser::feed_line(std::string_view line)
{
	if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) ||
	    (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
		error_ = "malformed reply line";
		return true;
	}
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (current_.lines.empty()) {
		current_.code = code;
	} else if (code != current_.code) {
		error_ = "reply lines with different codes";
		return true;
	}
	std::string text = line.size() > 4 ? std::string(line.substr(4)) : std::string();
	if (current_.lines.empty()) {
		size_t n = enhanced_code_length(text, line[0]);
		if (n)
			current_.enhanced = text.substr(0, n);
	}
	current_.lines.push_back(std::move(text));
	return line.size() == 3 || line[3] == ' ';
}

Reply ReplyParser::take()
{
	Reply r = std::move(current_);
	current_ = Reply{};
	error_.clear();
	return r;
}

void DotStuffer::feed(std::string_view chunk, std::string& out)
{
	if (chunk.empty())
		return;
	out.reserve(out.size() + chunk.size() + 16);
	for (char c : chunk) {
		if (at_line_start_ && c == '.')
			out.push_back('.');
		out.push_back(c);
		at_line_start_ = c == '\n';
		ended_with_crlf_ = c == '\n' && last_was_cr_;
		last_was_cr_ = c == '\r';
	}
}

void DotStuffer::finish(std::string& out)
{
	if (!ended_with_crlf_)
		out += "\r\n";
	out += ".\r\n";
	at_line_start_ = true;
	last_was_cr_ = false;
	ended_with_crlf_ = true;
}

int64_t retry_delay_seconds(int64_t base_s, int attempts_so_far, int64_t jitter_seconds)
{
	int shift = std::clamp(attempts_so_far, 0, 30);
	int64_t delay = base_s << shift;
	delay += jitter_seconds;
	return std::max<int64_t>(delay, 1);
}

std::optional<std::vector<std::string>> mx_hosts_in_order(std::vector<mailauth::MxRecord> mx)
{
	if (mx.size() == 1 && mx[0].host.empty())
		return std::nullopt;
	std::stable_sort(mx.begin(), mx.end(),
	                 [](const mailauth::MxRecord& a, const mailauth::MxRecord& b) { return a.preference < b.preference; });
	std::vector<std::string> hosts;
	for (auto& r : mx) {
		if (r.host.empty())
			continue;  // a "." among real MX records is meaningless; skip it
		if (std::find(hosts.begin(), hosts.end(), r.host) == hosts.end())
			hosts.push_back(r.host);
	}
	return hosts;
}


void split_address(std::string_view address, std::string& localpart, std::string& domain)
{
	size_t at = address.rfind('@');
	if (at == std::string_view::npos) {
		localpart = std::string(address);
		domain.clear();
		return;
	}
	localpart = std::string(address.substr(0, at));
	domain = std::string(address.substr(at + 1));
}

std::optional<std::string> address_literal(std::string_view domain)
{
	if (domain.size() < 3 || domain.front() != '[' || domain.back() != ']')
		return std::nullopt;
	std::string_view inner = domain.substr(1, domain.size() - 2);
	if (istarts_with(inner, "IPv6:"))
		inner.remove_prefix(5);
	return std::string(inner);
}

std::string message_base(std::string_view message_file)
{
	size_t dot = message_file.rfind('.');
	if (dot == std::string_view::npos)
		return std::string(message_file);
	return std::string(message_file.substr(0, dot));
}

ServerLimits parse_limits(std::string_view params)
{
	ServerLimits limits;
	while (!params.empty()) {
		const size_t space = params.find(' ');
		std::string_view item = params.substr(0, space);
		params = space == std::string_view::npos ? std::string_view() : params.substr(space + 1);
		const size_t eq = item.find('=');
		if (eq == std::string_view::npos)
			continue;
		std::string_view name = item.substr(0, eq), digits = item.substr(eq + 1);
		size_t value = 0;
		bool ok = !digits.empty() && digits.size() <= 9;
		for (char c : digits) {
			if (c < '0' || c > '9')
				ok = false;
			value = value * 10 + static_cast<size_t>(c - '0');
		}
		if (!ok)
			continue;
		if (iequals(name, "RCPTMAX"))
			limits.rcpt_max = value;
		else if (iequals(name, "MAILMAX"))
			limits.mail_max = value;
	}
	return limits;
}

bool has_tls_required_no(std::string_view headers)
{
	for (size_t pos = 0; pos < headers.size();) {
		size_t end = headers.find('\n', pos);
		std::string_view line = headers.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
		pos = end == std::string_view::npos ? headers.size() : end + 1;
		if (!line.empty() && line.back() == '\r')
			line.remove_suffix(1);
		if (line.empty())
			break;  // the end of the header section
		const size_t colon = line.find(':');
		if (colon == std::string_view::npos || !iequals(trim(line.substr(0, colon)), "TLS-Required"))
			continue;
		// The value may be folded onto continuation lines (RFC 5322 2.2.3).
		std::string value(line.substr(colon + 1));
		while (pos < headers.size() && (headers[pos] == ' ' || headers[pos] == '\t')) {
			end = headers.find('\n', pos);
			std::string_view more = headers.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
			if (!more.empty() && more.back() == '\r')
				more.remove_suffix(1);
			value += more;
			pos = end == std::string_view::npos ? headers.size() : end + 1;
		}
		if (iequals(trim(value), "No"))
			return true;
	}
	return false;
}

}  // namespace tern::queue
