// FastRandom: the small per-thread generator behind jitter and sampling.
#include <doctest/doctest.h>

#include <random>
#include <set>
#include <thread>

#include "util/random.h"

using namespace tern;

TEST_CASE("random: FastRandom draws distinct words and covers a small range evenly") {
	FastRandom rng;
	std::set<unsigned long long> words;
	for (int i = 0; i < 1000; ++i) words.insert(rng());
	CHECK(words.size() == 1000);

	int counts[100] = {};
	for (int i = 0; i < 100000; ++i) ++counts[std::uniform_int_distribution<int>(0, 99)(rng)];
	for (int bucket = 0; bucket < 100; ++bucket) {
		// 1000 expected per bucket; a sound generator stays well inside.
		CHECK(counts[bucket] > 800);
		CHECK(counts[bucket] < 1200);
	}
}

TEST_CASE("random: FastRandom is seeded apart in each thread") {
	unsigned long long here = FastRandom{}(), there = 0;
	std::thread([&] { there = FastRandom{}(); }).join();
	CHECK(here != there);
}
