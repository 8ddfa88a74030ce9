#include "inbound/delivery_rate.h"

#include <algorithm>

namespace tern::inbound {

namespace {

constexpr int64_t mib = 1024 * 1024;
// Windows as the texts name them (Go's duration notation, kept for replies
// that scripts may already match).
constexpr const char* minute_text = "1m0s";
constexpr const char* day_text = "24h0m0s";

}  // namespace

DeliveryRateLimits default_delivery_rate_limits() {
	DeliveryRateLimits l;
	const int64_t per_minute[3] = {500, 1500, 4500};
	const int64_t mib_per_minute[3] = {1000, 3000, 9000};
	for (size_t i = 0; i < 3; ++i) {
		l[i].messages_per_minute = per_minute[i];
		l[i].messages_per_day = 20 * per_minute[i];
		l[i].bytes_per_minute = mib_per_minute[i] * mib;
		l[i].bytes_per_day = 3 * mib_per_minute[i] * mib;
	}
	return l;
}

std::optional<std::string> delivery_rate_refusal(const std::array<NetworkHistoryCount, 3>& counts, int64_t size,
                                                 const DeliveryRateLimits& limits) {
	auto messages = [](int64_t limit, const char* window) {
		return "more than " + std::to_string(limit) + " messages in past " + window + " from your ip/network";
	};
	auto bytes = [](int64_t limit, const char* window) {
		return "more than " + std::to_string(limit) + " bytes in past " + window + " from your ip/network";
	};
	for (size_t i = 0; i < 3; ++i) {
		if (counts[i].messages_minute >= limits[i].messages_per_minute)
			return messages(limits[i].messages_per_minute, minute_text);
		if (counts[i].messages_day >= limits[i].messages_per_day)
			return messages(limits[i].messages_per_day, day_text);
	}
	for (size_t i = 0; i < 3; ++i) {
		if (counts[i].bytes_minute + size > limits[i].bytes_per_minute)
			return bytes(limits[i].bytes_per_minute, minute_text);
		if (counts[i].bytes_day + size > limits[i].bytes_per_day)
			return bytes(limits[i].bytes_per_day, day_text);
	}
	return std::nullopt;
}

std::optional<RateRefusalAt> first_rate_refusal(std::array<NetworkHistoryCount, 3> counts, int64_t size,
                                                const DeliveryRateLimits& limits, size_t recipients,
                                                CopiesCounted copies) {
	for (size_t i = 0; i < recipients; ++i) {
		if (std::optional<std::string> text = delivery_rate_refusal(counts, size, limits))
			return RateRefusalAt{i, std::move(*text)};
		bool stored = copies == CopiesCounted::each_recipient ||
		    (copies == CopiesCounted::first_recipient && i == 0);
		if (!stored) continue;
		for (NetworkHistoryCount& c : counts) {
			++c.messages_minute;
			++c.messages_day;
			c.bytes_minute += size;
			c.bytes_day += size;
		}
	}
	return std::nullopt;
}

std::string DeliveryRateWindows::key(const std::string& account, size_t width, const std::string& mask) {
	std::string k = account;
	k.push_back('\0');
	k.push_back(static_cast<char>('0' + width));
	k += mask;
	return k;
}

void DeliveryRateWindows::Window::drop_before(int64_t cutoff) {
	while (!empty() && seconds[first].at < cutoff) {
		messages -= seconds[first].messages;
		bytes -= seconds[first].bytes;
		++first;
	}
	// The expired seconds go in one move once they are half the vector, so
	// that dropping stays amortized O(1) per second.
	if (first > 0 && first * 2 >= seconds.size()) {
		seconds.erase(seconds.begin(), begin());
		first = 0;
		if (seconds.capacity() > 2 * seconds.size() + 4) seconds.shrink_to_fit();
	}
}

void DeliveryRateWindows::count(const std::string& account, const std::array<std::string, 3>& masks, int64_t received,
                                int64_t size, int delta) {
	for (size_t i = 0; i < 3; ++i) {
		if (masks[i].empty()) continue;
		std::string k = key(account, i, masks[i]);
		auto found = windows_.find(k);
		if (found == windows_.end() && delta < 0) continue;
		Window& w = found != windows_.end() ? found->second : windows_[k];
		auto at = std::lower_bound(w.begin(), w.seconds.end(), received,
		                           [](const Second& s, int64_t t) { return s.at < t; });
		if (at == w.seconds.end() || at->at != received) {
			if (delta < 0) continue;  // its second has expired: it counts nowhere any more
			at = w.seconds.insert(at, Second{received, 0, 0});
		}
		at->messages += delta;
		at->bytes += delta * size;
		w.messages += delta;
		w.bytes += delta * size;
	}
}

std::array<NetworkHistoryCount, 3> DeliveryRateWindows::counts(const std::string& account,
                                                               const std::array<std::string, 3>& masks, int64_t now) {
	std::array<NetworkHistoryCount, 3> out{};
	for (size_t i = 0; i < 3; ++i) {
		if (masks[i].empty()) continue;
		auto found = windows_.find(key(account, i, masks[i]));
		if (found == windows_.end()) continue;
		Window& w = found->second;
		w.drop_before(now - day - grace);
		NetworkHistoryCount& c = out[i];
		c.messages_day = w.messages;
		c.bytes_day = w.bytes;
		// The grace seconds kept before the day do not count in it.
		for (auto it = w.begin(); it != w.seconds.end() && it->at <= now - day; ++it) {
			c.messages_day -= it->messages;
			c.bytes_day -= it->bytes;
		}
		for (auto it = w.seconds.rbegin(); it != std::make_reverse_iterator(w.begin()) && it->at > now - minute;
		     ++it) {
			c.messages_minute += it->messages;
			c.bytes_minute += it->bytes;
		}
	}
	return out;
}

void DeliveryRateWindows::expire(int64_t now) {
	for (auto it = windows_.begin(); it != windows_.end();) {
		it->second.drop_before(now - day - grace);
		it = it->second.empty() ? windows_.erase(it) : std::next(it);
	}
}

}  // namespace tern::inbound
