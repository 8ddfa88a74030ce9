// MTA-STS policies kept in the database (src/store/mta_sts_policies): a
// policy saved comes back whole until it expires, a newer one replaces it,
// and rows that expired or cannot be read are dropped at the load.
#include <doctest/doctest.h>

#include <algorithm>

#include "store/mta_sts_policies.h"
#include "store/table.h"
#include "unit/files.h"

using namespace tern;
using tern::testing::TempDir;
namespace sts = tern::mailauth::mta_sts;

namespace {

store::StoredStsPolicy policy(const std::string& domain, const std::string& id, sts::Mode mode, int64_t expires) {
	store::StoredStsPolicy p;
	p.domain = domain;
	p.id = id;
	p.policy.mode = mode;
	p.policy.max_age = 86400;
	if (mode != sts::Mode::none) p.policy.mx = {"mx1.example.com", "*.example.net"};
	p.expires = expires;
	return p;
}

}  // namespace

TEST_CASE("MTA-STS store: policies are kept until they expire") {
	TempDir dir;
	store::Env env(dir.path);
	const int64_t now = 1800000000;
	store::sts_policies_write(env, {policy("example.com", "old1", sts::Mode::testing, now + 100)}, {});
	store::sts_policies_write(env, {policy("example.com", "new2", sts::Mode::enforce, now + 200)}, {});  // replaces
	store::sts_policies_write(env, {policy("none.example", "n1", sts::Mode::none, now + 300)}, {});
	store::sts_policies_write(env, {policy("gone.example", "g1", sts::Mode::enforce, now - 1)}, {});
	env.in_table("mtasts.db", [](store::TableTxn& t) { t.put("broken.example", "id-only"); });

	std::vector<store::StoredStsPolicy> loaded = store::sts_policies_load(env, now);
	REQUIRE(loaded.size() == 2);  // in key order
	CHECK(loaded[0].domain == "example.com");
	CHECK(loaded[0].id == "new2");
	CHECK(loaded[0].policy.mode == sts::Mode::enforce);
	CHECK(loaded[0].policy.max_age == 86400);
	CHECK(loaded[0].policy.mx == std::vector<std::string>{"mx1.example.com", "*.example.net"});
	CHECK(loaded[0].expires == now + 200);
	CHECK(loaded[1].domain == "none.example");
	CHECK(loaded[1].policy.mode == sts::Mode::none);
	CHECK(loaded[1].policy.mx.empty());

	// The expired and the unreadable rows were deleted, not only skipped.
	bool any_left = false;
	env.in_table("mtasts.db", [&](store::TableTxn& t) {
		any_left = t.get("gone.example").has_value() || t.get("broken.example").has_value();
	});
	CHECK_FALSE(any_left);
	// Later, the rest expires too.
	CHECK(store::sts_policies_load(env, now + 250).size() == 1);
}

TEST_CASE("MTA-STS store: the row's text form") {
	store::StoredStsPolicy p = policy("example.com", "abc", sts::Mode::enforce, 1800000123);
	std::string text = store::sts_policy_encode(p);
	CHECK(text == "abc\nenforce\n86400\n1800000123\nmx1.example.com\n*.example.net");
	store::StoredStsPolicy back;
	REQUIRE(store::sts_policy_decode("example.com", text, back));
	CHECK(back.id == "abc");
	CHECK(back.policy.mx == p.policy.mx);
	CHECK_FALSE(store::sts_policy_decode("x", "abc\nreject\n1\n2", back));  // unknown mode
	CHECK_FALSE(store::sts_policy_decode("x", "abc\nenforce\nday\n2", back));
	CHECK_FALSE(store::sts_policy_decode("x", "\nenforce\n1\n2", back));  // no id
	CHECK_FALSE(store::sts_policy_decode("x", "abc\nenforce\n1", back));
	// D43: a row of more than 100 mx patterns (kept before the limit) is
	// dropped like an unreadable one.
	std::string many = "abc\nenforce\n86400\n1800000123";
	for (int i = 0; i < 100; ++i) many += "\nmx" + std::to_string(i) + ".example";
	CHECK(store::sts_policy_decode("x", many, back));
	CHECK(back.policy.mx.size() == 100);
	CHECK_FALSE(store::sts_policy_decode("x", many + "\none-more.example", back));
}

TEST_CASE("MTA-STS store: a save deletes the domains the queue dropped") {
	TempDir dir;
	store::Env env(dir.path);
	const int64_t now = 1800000000;
	store::sts_policies_write(env, {policy("a.example", "a1", sts::Mode::enforce, now + 100)}, {});
	store::sts_policies_write(env, {policy("b.example", "b1", sts::Mode::enforce, now + 100)}, {});
	store::sts_policies_write(env, {policy("c.example", "c1", sts::Mode::enforce, now + 100)}, {"a.example"});
	store::sts_policies_write(env, {}, {"b.example", "never.example"});
	std::vector<store::StoredStsPolicy> loaded = store::sts_policies_load(env, now);
	REQUIRE(loaded.size() == 1);
	CHECK(loaded[0].domain == "c.example");
}

TEST_CASE("MTA-STS store: one write saves several policies and deletes dropped domains together") {
	TempDir dir;
	store::Env env(dir.path);
	const int64_t now = 1800000000;
	store::sts_policies_write(env, {policy("old.example", "o1", sts::Mode::enforce, now + 100)}, {});
	store::sts_policies_write(env,
	                          {policy("a.example", "a1", sts::Mode::enforce, now + 100),
	                           policy("b.example", "b1", sts::Mode::testing, now + 100)},
	                          {"old.example"});
	std::vector<store::StoredStsPolicy> loaded = store::sts_policies_load(env, now);
	REQUIRE(loaded.size() == 2);
	CHECK(loaded[0].domain == "a.example");
	CHECK(loaded[1].domain == "b.example");
	CHECK(loaded[1].policy.mode == sts::Mode::testing);
}
