#include "queue/outbound_util.h"

#include <algorithm>
#include <ctime>

#include "util/ipaddr.h"
#include "util/strings.h"

namespace tern::queue {

int64_t retry_delay_seconds(int64_t base_s, int attempts_so_far, int64_t jitter_seconds) {
	int shift = std::clamp(attempts_so_far, 0, 30);
	int64_t delay = base_s << shift;
	delay += jitter_seconds;
	return std::max<int64_t>(delay, 1);
}

namespace {

// An IPv4-mapped IPv6 address counts as IPv4, as IpAddr stores it.
bool is_ipv6(const std::string& address) {
	std::optional<IpAddr> ip = IpAddr::parse(address);
	return ip && ip->v6;
}

}  // namespace

bool dual_stack(const std::vector<std::string>& addresses) {
	bool v4 = false, v6 = false;
	for (const std::string& a : addresses) (is_ipv6(a) ? v6 : v4) = true;
	return v4 && v6;
}

std::vector<std::string> addresses_for_attempt(std::vector<std::string> addresses, int attempt) {
	// Odd attempts (the first included) dial IPv4 first, even ones IPv6.
	const bool ipv6_first = attempt > 0 && attempt % 2 == 0;
	std::stable_partition(addresses.begin(), addresses.end(),
	                      [ipv6_first](const std::string& a) { return is_ipv6(a) == ipv6_first; });
	return addresses;
}

bool retry_policy_refusal(std::string_view enhanced, int attempt, bool host_dual_stack) {
	return host_dual_stack && attempt == 1 && enhanced.substr(0, 4) == "5.7.";
}

std::optional<std::vector<std::string>> mx_hosts_in_order(std::vector<mailauth::MxRecord> mx) {
	if (mx.size() == 1 && mx[0].host.empty()) return std::nullopt;
	std::stable_sort(mx.begin(), mx.end(), [](const mailauth::MxRecord& a, const mailauth::MxRecord& b) {
		return a.preference < b.preference;
	});
	std::vector<std::string> hosts;
	for (auto& r : mx) {
		if (r.host.empty()) continue;  // a "." among real MX records is meaningless; skip it
		if (std::find(hosts.begin(), hosts.end(), r.host) == hosts.end()) hosts.push_back(r.host);
	}
	return hosts;
}


std::optional<std::string> address_literal(std::string_view domain) {
	if (domain.size() < 3 || domain.front() != '[' || domain.back() != ']') return std::nullopt;
	std::string_view inner = domain.substr(1, domain.size() - 2);
	if (istarts_with(inner, "IPv6:")) inner.remove_prefix(5);
	return std::string(inner);
}

std::string message_base(std::string_view message_file) {
	size_t dot = message_file.rfind('.');
	if (dot == std::string_view::npos) return std::string(message_file);
	return std::string(message_file.substr(0, dot));
}

ServerLimits parse_limits(std::string_view params) {
	ServerLimits limits;
	while (!params.empty()) {
		const size_t space = params.find(' ');
		std::string_view item = params.substr(0, space);
		params = space == std::string_view::npos ? std::string_view() : params.substr(space + 1);
		const size_t eq = item.find('=');
		if (eq == std::string_view::npos) continue;
		std::string_view name = item.substr(0, eq), digits = item.substr(eq + 1);
		size_t value = 0;
		bool ok = !digits.empty() && digits.size() <= 9;
		for (char c : digits) {
			if (c < '0' || c > '9') ok = false;
			value = value * 10 + static_cast<size_t>(c - '0');
		}
		if (!ok) continue;
		if (iequals(name, "RCPTMAX"))
			limits.rcpt_max = value;
		else if (iequals(name, "MAILMAX"))
			limits.mail_max = value;
	}
	return limits;
}

bool has_tls_required_no(std::string_view headers) {
	for (size_t pos = 0; pos < headers.size();) {
		size_t end = headers.find('\n', pos);
		std::string_view line = headers.substr(
		    pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
		pos = end == std::string_view::npos ? headers.size() : end + 1;
		if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
		if (line.empty()) break;  // the end of the header section
		const size_t colon = line.find(':');
		if (colon == std::string_view::npos || !iequals(trim(line.substr(0, colon)), "TLS-Required")) continue;
		// The value may be folded onto continuation lines (RFC 5322 2.2.3).
		std::string value(line.substr(colon + 1));
		while (pos < headers.size() && (headers[pos] == ' ' || headers[pos] == '\t')) {
			end = headers.find('\n', pos);
			std::string_view more = headers.substr(
			    pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
			if (!more.empty() && more.back() == '\r') more.remove_suffix(1);
			value += more;
			pos = end == std::string_view::npos ? headers.size() : end + 1;
		}
		if (iequals(trim(value), "No")) return true;
	}
	return false;
}

}  // namespace tern::queue
