// Per-account delivery-rate limits by client network (doc/behaviour.md §9,
// "Delivery rates"): a single address or network may not fill a mailbox or
// the disk. The counts come from the account's history; the rule is here.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace tern::inbound {

// Limits for one network width (IPv4 /32, /26, /21; IPv6 /64, /48, /32).
struct NetworkRateLimit {
	int64_t messages_per_minute = 0;
	int64_t messages_per_day = 0;
	int64_t bytes_per_minute = 0;
	int64_t bytes_per_day = 0;
};

using DeliveryRateLimits = std::array<NetworkRateLimit, 3>;

// The model's table: 500/1500/4500 messages a minute, twenty times that a
// day; 1000/3000/9000 MiB a minute, three times that a day.
DeliveryRateLimits default_delivery_rate_limits();

// Non-expunged messages of the account from the client's network, and their
// total size, received within the last minute and the last day.
struct NetworkHistoryCount {
	int64_t messages_minute = 0, messages_day = 0;
	int64_t bytes_minute = 0, bytes_day = 0;
};

// The refusal text when this message (of `size` bytes) would pass a limit,
// checked in the model's order: message counts for each width and window
// first, then sizes. The reply is `452 4.2.2 <text>`, and the connection goes
// slow (doc/behaviour.md §1).
std::optional<std::string> delivery_rate_refusal(const std::array<NetworkHistoryCount, 3>& counts, int64_t size,
                                                 const DeliveryRateLimits& limits);

}  // namespace tern::inbound
