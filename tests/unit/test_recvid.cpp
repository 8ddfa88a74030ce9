// Received-id: AES-128 of [8 install bytes][cid big-endian], base64url.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>

#include "util/recvid.h"

using tern::ReceivedIdGenerator;

namespace {
// The model's test key: AES key "0123456701234567", block prefix "01234567".
const std::string seed_test_key =
    "0123456701234567"
    "01234567";
}  // namespace

TEST_CASE("recvid: known answers (cross-checked with openssl aes-128-ecb)") {
	ReceivedIdGenerator gen(seed_test_key);
	CHECK(gen.id(1) == "nLDpV_E0im9f-53GHgDAOA");
	CHECK(gen.id(2) == "DwP6dXxYa1uiRFsx7sb_6A");
	CHECK(gen.id(0x123456789abcdef0ULL) == "bjUEUssEUPj8qPcmJdmiUA");
	CHECK(gen.id(1).size() == 22);
	// Deterministic, and a copy gives the same ids.
	ReceivedIdGenerator copy = gen;
	CHECK(copy.id(1) == gen.id(1));
}

TEST_CASE("recvid: ids differ per cid and per key, and map back") {
	ReceivedIdGenerator gen(seed_test_key);
	std::set<std::string> seen;
	for (uint64_t cid = 1; cid <= 1000; ++cid) {
		std::string id = gen.id(cid);
		CHECK(id.size() == 22);
		CHECK(id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
		      std::string::npos);
		seen.insert(id);
		CHECK(gen.cid_of(id) == cid);
	}
	CHECK(seen.size() == 1000);

	std::string other_key = seed_test_key;
	other_key[20] = 'x';  // only the block prefix differs
	ReceivedIdGenerator other(other_key);
	CHECK(other.id(1) != gen.id(1));
	CHECK_FALSE(other.cid_of(gen.id(1)).has_value());
	CHECK_FALSE(gen.cid_of("short").has_value());
	CHECK_FALSE(gen.cid_of("nLDpV_E0im9f-53GHgDAO!").has_value());
}

TEST_CASE("recvid: key must be 24 bytes") {
	CHECK_THROWS_AS(ReceivedIdGenerator(std::string(16, 'k')), std::invalid_argument);
	CHECK_THROWS_AS(ReceivedIdGenerator(std::string(25, 'k')), std::invalid_argument);
}

TEST_CASE("recvid: load_or_create_key") {
	char dir_template[] = "/tmp/tern-recvid-test-XXXXXX";
	REQUIRE(mkdtemp(dir_template) != nullptr);
	std::string dir = dir_template;
	std::string path = dir + "/receivedid.key";

	std::string key = ReceivedIdGenerator::load_or_create_key(path);
	CHECK(key.size() == 24);
	struct stat st {};
	REQUIRE(stat(path.c_str(), &st) == 0);
	CHECK(st.st_size == 24);
	CHECK((st.st_mode & 0777) == 0600);
	// Second call reads the same key back.
	CHECK(ReceivedIdGenerator::load_or_create_key(path) == key);
	// No temporary file is left behind.
	CHECK(access((path + ".tmp." + std::to_string(getpid())).c_str(), F_OK) != 0);

	// Another install gets another key.
	std::string path2 = dir + "/other.key";
	CHECK(ReceivedIdGenerator::load_or_create_key(path2) != key);

	// A file of the wrong size is an error, not silently replaced.
	std::string bad = dir + "/bad.key";
	{
		std::ofstream out(bad, std::ios::binary);
		out << "too short";
	}
	CHECK_THROWS_AS(ReceivedIdGenerator::load_or_create_key(bad), std::runtime_error);
	// Missing directory: error.
	CHECK_THROWS_AS(ReceivedIdGenerator::load_or_create_key(dir + "/nodir/x.key"), std::runtime_error);

	std::remove(path.c_str());
	std::remove(path2.c_str());
	std::remove(bad.c_str());
	rmdir(dir.c_str());
}
