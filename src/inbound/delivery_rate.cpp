#include "inbound/delivery_rate.h"

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
		if (counts[i].messages_day >= limits[i].messages_per_day) return messages(limits[i].messages_per_day, day_text);
	}
	for (size_t i = 0; i < 3; ++i) {
		if (counts[i].bytes_minute + size > limits[i].bytes_per_minute)
			return bytes(limits[i].bytes_per_minute, minute_text);
		if (counts[i].bytes_day + size > limits[i].bytes_per_day) return bytes(limits[i].bytes_per_day, day_text);
	}
	return std::nullopt;
}

}  // namespace tern::inbound
