// The delivery-rate counts kept in memory (inbound/delivery_rate.h): the
// minute and day windows to the second, copies leaving the counts, expiry.
#include <doctest/doctest.h>

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
