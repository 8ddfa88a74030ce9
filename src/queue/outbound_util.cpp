#include "queue/outbound_util.h"

#include <algorithm>
#include <ctime>

#include "util/strings.h"

namespace tern::queue {

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

}  // namespace tern::queue
