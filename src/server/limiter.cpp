#include "server/limiter.h"

namespace tern::server {

Limiter::Limiter(std::vector<Window> windows) {
	for (auto& w : windows) states_.push_back(State{w, -1, {}});
}

void Limiter::set_windows(const std::vector<Window>& windows) {
	bool same_lengths = windows.size() == states_.size();
	for (size_t i = 0; same_lengths && i < windows.size(); ++i)
		same_lengths = windows[i].seconds == states_[i].window.seconds;
	if (!same_lengths) {
		*this = Limiter(windows);
		return;
	}
	for (size_t i = 0; i < windows.size(); ++i) states_[i].window.limits = windows[i].limits;
}

Limiter::Window limiter_window(int64_t seconds, const std::vector<int64_t>& limits) {
	Limiter::Window w{seconds, {0, 0, 0}};
	for (size_t i = 0; i < 3 && i < limits.size(); ++i) w.limits[i] = limits[i];
	return w;
}

std::array<std::string, 3> Limiter::class_keys(const IpAddr& ip) {
	// IPv4: /32, /26, /21. IPv6: /64, /48, /32 (doc/behaviour.md §10).
	static constexpr int v4[3] = {32, 26, 21};
	static constexpr int v6[3] = {64, 48, 32};
	std::array<std::string, 3> keys;
	for (int i = 0; i < 3; ++i) {
		IpAddr m = ip.masked(ip.v6 ? v6[i] : v4[i]);
		keys[i].assign(reinterpret_cast<const char*>(m.bytes.data()), ip.v6 ? 16 : 4);
	}
	return keys;
}

void Limiter::roll(State& s, int64_t now_s) {
	int64_t bucket = s.window.seconds > 0 ? now_s / s.window.seconds : 0;
	if (bucket > s.bucket) {
		for (auto& m : s.counts) m.clear();
		s.bucket = bucket;
	}
}

bool Limiter::can_add(const IpAddr& ip, int64_t now_s, int64_t n) {
	auto keys = class_keys(ip);
	for (auto& s : states_) {
		roll(s, now_s);
		for (int i = 0; i < 3; ++i) {
			auto it = s.counts[i].find(keys[i]);
			int64_t have = it == s.counts[i].end() ? 0 : it->second;
			if (n > 0 && have + n > s.window.limits[i]) return false;
		}
	}
	return true;
}

bool Limiter::add(const IpAddr& ip, int64_t now_s, int64_t n) {
	if (!can_add(ip, now_s, n)) return false;
	auto keys = class_keys(ip);
	for (auto& s : states_) {
		for (int i = 0; i < 3; ++i) {
			int64_t& v = s.counts[i][keys[i]];
			v += n;
			// Keep the maps small: an address back at zero is forgotten.
			if (v <= 0) s.counts[i].erase(keys[i]);
		}
	}
	return true;
}

void Limiter::reset(const IpAddr& ip, int64_t now_s) {
	auto keys = class_keys(ip);
	for (auto& s : states_) {
		int64_t bucket = s.window.seconds > 0 ? now_s / s.window.seconds : 0;
		if (bucket != s.bucket) continue;
		auto it = s.counts[0].find(keys[0]);
		if (it == s.counts[0].end()) continue;
		int64_t own = it->second;
		for (int i = 0; i < 3; ++i) {
			auto jt = s.counts[i].find(keys[i]);
			if (jt == s.counts[i].end()) continue;
			jt->second -= own;
			if (jt->second <= 0) s.counts[i].erase(jt);
		}
	}
}

}  // namespace tern::server
