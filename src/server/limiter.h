// Per-IP rate and concurrency limiters with the model's semantics
// (doc/behaviour.md §10): each window has three limits, for the exact
// address (IPv6: /64), its /26 (/48) and its /21 (/32). Windows are fixed
// buckets aligned to the Unix epoch; when a new bucket starts, all counters
// of that window are dropped. Pure logic: time is passed in.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "util/ipaddr.h"

namespace tern::server {

class Limiter {
public:
	struct Window {
		int64_t seconds;                // 0: one window for all time (concurrency)
		std::array<int64_t, 3> limits;  // per IP class 1, 2, 3
	};
	explicit Limiter(std::vector<Window> windows);

	// Adds n (may be negative) to every class counter of every window if no
	// limit would be exceeded; returns false and changes nothing otherwise.
	// A negative n always succeeds.
	bool add(const IpAddr& ip, int64_t now_s, int64_t n);
	bool can_add(const IpAddr& ip, int64_t now_s, int64_t n);
	// Removes this address's class-1 contribution from all classes, in the
	// windows whose bucket is current (after a successful login).
	void reset(const IpAddr& ip, int64_t now_s);
	// New limits for the same windows (a reload): the counts so far are
	// kept and judged by the new limits. Windows of another length, or a
	// different number of windows, start counting afresh.
	void set_windows(const std::vector<Window>& windows);

private:
	struct State {
		Window window;
		int64_t bucket = -1;
		std::array<std::unordered_map<std::string, int64_t>, 3> counts;
	};
	static std::array<std::string, 3> class_keys(const IpAddr& ip);
	void roll(State& s, int64_t now_s);
	std::vector<State> states_;
};

// Builds a limiter from a config triple (limits.* arrays).
Limiter::Window limiter_window(int64_t seconds, const std::vector<int64_t>& limits);

}  // namespace tern::server
