// Per-account delivery-rate limits by client network (doc/behaviour.md §9,
// "Delivery rates"): a single address or network may not fill a mailbox or
// the disk. The counts come from the account's history; the rule is here.
#pragma once
#include <array>
#include <cstdint>
#include <cstddef>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

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

// What the copies of one account's recipients add to its counts while a
// message is delivered: each recipient's (the message is accepted), only
// the first one's (refused, its one Rejects copy kept), or none.
enum class CopiesCounted { each_recipient, first_recipient, none };

// The model checks the limits per recipient, after the copies of the
// recipients before it were stored, so a message to several addresses of
// one account may fill the last places: the index of the first of the
// account's `recipients` (transaction order) that the limits refuse, with
// the refusal text; nullopt when they refuse none.
struct RateRefusalAt {
	size_t first = 0;
	std::string text;
};
std::optional<RateRefusalAt> first_rate_refusal(std::array<NetworkHistoryCount, 3> counts, int64_t size,
                                                const DeliveryRateLimits& limits, size_t recipients,
                                                CopiesCounted copies);

// The counts above kept up to date as copies come and go, so that reading
// them costs the same with a quiet history as with a busy one: per account
// and network, the copies' messages and bytes by second of reception for the
// last day (a second holds every copy received in it), and the day's totals.
// Reading walks at most a minute of seconds at each end of the day;
// expiring is amortized over the copies counted. Not thread-safe: the
// owner (store/history.cpp) locks.
class DeliveryRateWindows {
public:
	static constexpr int64_t minute = 60, day = 24 * 3600;
	// Seconds kept past the day, so that a reader whose clock is a little
	// behind another's still finds the copies of its day.
	static constexpr int64_t grace = 60;

	// A copy of `size` bytes received at `received` from the networks
	// `masks` (empty ones skipped) enters the counts (delta 1) or leaves
	// them (delta -1: expunged or pruned). Leaving a second already expired
	// changes nothing.
	void count(const std::string& account, const std::array<std::string, 3>& masks, int64_t received, int64_t size,
	           int delta);
	// The counts of delivery_rate_refusal at `now`: copies received after
	// now - 1 day and after now - 1 minute (a copy stamped later than `now`
	// by a clock a little ahead counts in both).
	std::array<NetworkHistoryCount, 3> counts(const std::string& account, const std::array<std::string, 3>& masks,
	                                          int64_t now);
	// Drops the seconds older than the day (and grace) before `now` in
	// every network, and the networks left empty.
	void expire(int64_t now);
	// Networks with copies (for tests and memory bounds).
	size_t networks() const { return windows_.size(); }

private:
	struct Second {
		int64_t at, messages, bytes;
	};
	// One per account and network, and a busy server sees many networks
	// with a copy or two each (a botnet's addresses): a vector, whose few
	// seconds cost their bytes, where a deque takes a 512-byte block and a
	// map of blocks for its first element.
	struct Window {
		std::vector<Second> seconds;  // ascending `at`; those before `first` expired
		size_t first = 0;
		int64_t messages = 0, bytes = 0;
		void drop_before(int64_t cutoff);
		auto begin() { return seconds.begin() + static_cast<std::ptrdiff_t>(first); }
		bool empty() const { return first == seconds.size(); }
	};
	static std::string key(const std::string& account, size_t width, const std::string& mask);
	std::unordered_map<std::string, Window> windows_;
};

}  // namespace tern::inbound
