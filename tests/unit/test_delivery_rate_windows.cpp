// The delivery-rate counts kept in memory (inbound/delivery_rate.h): the
// minute and day windows to the second, copies leaving the counts, expiry.
#include <doctest/doctest.h>
#include <malloc.h>

#include <map>
#include <string>

#include "inbound/delivery_rate.h"

using tern::inbound::DeliveryRateWindows;

namespace {

constexpr int64_t now = 1800000000;
const std::array<std::string, 3> net_a{"192.0.2.1/32", "192.0.2.0/26", "192.0.0.0/21"};
const std::array<std::string, 3> net_b{"192.0.2.2/32", "192.0.2.0/26", "192.0.0.0/21"};

}  // namespace

TEST_CASE("rate windows: a copy counts in the minute and the day after its second, not at the edge") {
	DeliveryRateWindows w;
	w.count("mjl", net_a, now - 59, 100, 1);     // in the minute
	w.count("mjl", net_a, now - 60, 200, 1);     // the minute's edge: day only
	w.count("mjl", net_a, now - 86399, 400, 1);  // the day's last second
	w.count("mjl", net_a, now - 86400, 800, 1);  // the day's edge: nowhere
	auto c = w.counts("mjl", net_a, now);
	CHECK(c[0].messages_minute == 1);
	CHECK(c[0].bytes_minute == 100);
	CHECK(c[0].messages_day == 3);
	CHECK(c[0].bytes_day == 700);
	// A second later the day's last second and the minute's last have left.
	c = w.counts("mjl", net_a, now + 1);
	CHECK(c[0].messages_day == 2);
	CHECK(c[0].messages_minute == 0);
	// A clock a little behind still finds the copies of its day.
	c = w.counts("mjl", net_a, now - 1);
	CHECK(c[0].messages_day == 4);
	CHECK(c[0].messages_minute == 2);
}

TEST_CASE("rate windows: each network width counts apart, per account") {
	DeliveryRateWindows w;
	w.count("mjl", net_a, now - 10, 1000, 1);
	w.count("mjl", net_b, now - 20, 5000, 1);
	w.count("mjl", net_b, now - 20, 5000, 1);  // the same second adds up
	w.count("other", net_a, now - 10, 1000, 1);
	auto c = w.counts("mjl", net_a, now);
	CHECK(c[0].messages_day == 1);
	CHECK(c[1].messages_day == 3);
	CHECK(c[1].bytes_minute == 11000);
	CHECK(c[2].messages_minute == 3);
	CHECK(w.counts("nobody", net_a, now)[2].messages_day == 0);
	// An empty mask (no address) counts nothing.
	w.count("mjl", {"", "", ""}, now, 1, 1);
	CHECK(w.counts("mjl", {"", "", ""}, now)[0].messages_day == 0);
}

TEST_CASE("rate windows: copies recorded out of order and copies leaving") {
	DeliveryRateWindows w;
	w.count("mjl", net_a, now - 5, 10, 1);
	w.count("mjl", net_a, now - 3600, 20, 1);  // older than the newest: sorted in
	w.count("mjl", net_a, now - 30, 40, 1);
	auto c = w.counts("mjl", net_a, now);
	CHECK(c[0].messages_minute == 2);
	CHECK(c[0].bytes_minute == 50);
	CHECK(c[0].messages_day == 3);
	// Expunged: the copy leaves its second.
	w.count("mjl", net_a, now - 30, 40, -1);
	c = w.counts("mjl", net_a, now);
	CHECK(c[0].messages_minute == 1);
	CHECK(c[0].bytes_day == 30);
	// A copy whose second has already expired changes nothing.
	w.count("mjl", net_a, now - 3 * 86400, 40, -1);
	CHECK(w.counts("mjl", net_a, now)[0].messages_day == 2);
	// A copy stamped a second ahead of the reader counts (another worker's clock).
	w.count("mjl", net_a, now + 1, 10, 1);
	CHECK(w.counts("mjl", net_a, now)[0].messages_minute == 2);
}

TEST_CASE("rate windows: expiry drops old seconds and empty networks, and counts stay right") {
	DeliveryRateWindows w;
	w.count("mjl", net_a, now, 10, 1);
	w.count("mjl", net_b, now + 86400, 10, 1);
	CHECK(w.networks() == 4);  // two /32s, the /26 and /21 they share
	w.expire(now + 86400 + DeliveryRateWindows::grace);
	CHECK(w.networks() == 4);  // now's second is within the grace
	w.expire(now + 86400 + DeliveryRateWindows::grace + 1);
	CHECK(w.networks() == 3);  // only net_b's copy is left
	auto c = w.counts("mjl", net_a, now + 86400 + 100);
	CHECK(c[0].messages_day == 0);
	CHECK(c[1].messages_day == 1);  // net_b's, in the shared /26
	CHECK(c[1].bytes_day == 10);
	// After expiry, a copy leaving a dropped second changes nothing.
	w.count("mjl", net_a, now, 10, -1);
	CHECK(w.counts("mjl", net_b, now + 86400 + 100)[1].messages_day == 1);
}

TEST_CASE("rate windows: a busy day costs a bounded read and gives the refusal at the limit") {
	DeliveryRateWindows w;
	// 20,000 copies over the day, one every ~4 seconds, 2 KB each.
	for (int64_t i = 0; i < 20000; ++i) w.count("mjl", net_a, now - 86399 + i * 4, 2048, 1);
	auto c = w.counts("mjl", net_a, now);
	CHECK(c[0].messages_day == 20000);
	CHECK(c[0].messages_minute == 0);  // the last copy is at now - 86399 + 79996 = now - 6403
	auto limits = tern::inbound::default_delivery_rate_limits();
	limits[0].messages_per_day = 20000;
	CHECK(tern::inbound::delivery_rate_refusal(c, 2048, limits) ==
	      "more than 20000 messages in past 24h0m0s from your ip/network");
	limits[0].messages_per_day = 20001;
	CHECK_FALSE(tern::inbound::delivery_rate_refusal(c, 2048, limits));
}

// The seconds of one network as the windows must keep them: by second,
// those older than the day and its grace dropped whenever the windows
// drop them (a read or an expiry), a copy leaving a dropped second
// changing nothing.
TEST_CASE("rate windows: counts match a plain model through reads, expiry, and copies in any order") {
	DeliveryRateWindows w;
	std::map<int64_t, std::pair<int64_t, int64_t>> model;  // second -> messages, bytes
	auto drop = [&](int64_t t) { model.erase(model.begin(), model.lower_bound(t - 86400 - 60)); };
	uint32_t seed = 12345;
	auto next = [&seed](uint32_t n) {
		seed = seed * 1103515245 + 12345;
		return (seed >> 8) % n;
	};
	int64_t t = now;
	for (int step = 0; step < 20000; ++step) {
		t += next(40);                       // time goes on, up to 40 s a step
		const int64_t at = t - next(90000);  // a copy of the last day or a little before
		const int64_t size = 1 + next(5000);
		switch (next(4)) {
		case 0:
		case 1:
			w.count("acct", net_a, at, size, 1);
			model[at].first += 1;
			model[at].second += size;
			break;
		case 2:
			if (auto it = model.lower_bound(at); it != model.end() && it->second.first > 0) {
				const int64_t leaving = it->second.second / it->second.first;
				w.count("acct", net_a, it->first, leaving, -1);
				it->second.first -= 1;
				it->second.second -= leaving;
			}
			break;
		default: {
			drop(t);
			auto c = w.counts("acct", net_a, t);
			int64_t day = 0, day_bytes = 0, minute = 0;
			for (const auto& [second, mb] : model) {
				if (second > t - 86400) day += mb.first, day_bytes += mb.second;
				if (second > t - 60) minute += mb.first;
			}
			INFO("step " << step);
			REQUIRE(c[0].messages_day == day);
			REQUIRE(c[0].bytes_day == day_bytes);
			REQUIRE(c[0].messages_minute == minute);
			REQUIRE(c[2].messages_day == day);
		}
		}
		if (next(500) == 0) {
			drop(t);
			w.expire(t);
		}
	}
}

// A botnet's copies, one from each of many networks, kept for the day: a
// network's few seconds must cost about their bytes (a deque of one
// element took a 512-byte block and its map, about 2 KB a client).
TEST_CASE("rate windows: many networks with a copy each stay small in memory") {
#ifdef __SANITIZE_ADDRESS__
	// mallinfo2 reads zeros under AddressSanitizer's allocator.
	MESSAGE("skipped: glibc's allocator is replaced by AddressSanitizer");
	return;
#endif
	constexpr int clients = 20000;
	const size_t before = mallinfo2().uordblks;
	{
		DeliveryRateWindows w;
		for (int i = 0; i < clients; ++i) {
			const std::string a = std::to_string(10 + i / 65536) + "." + std::to_string(i / 256 % 256) +
			    "." + std::to_string(i % 256);
			w.count("acct", {a + ".1/32", a + ".0/26", a + ".0/21"}, now, 2048, 1);
		}
		CHECK(w.networks() == 3 * clients);
		const size_t used = mallinfo2().uordblks - before;
		MESSAGE("bytes per client: " << used / clients);
		CHECK(used < clients * size_t{1000});
	}
}
