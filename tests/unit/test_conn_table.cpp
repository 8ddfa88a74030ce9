// ConnTable: generation-checked handles (doc/design.md "one lifetime rule").
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/conn_table.h"

using tern::core::ConnHandle;
using tern::core::ConnTable;

namespace {

struct Tracked {
	std::string name;
	int* destroyed;
	Tracked(std::string n, int* d) : name(std::move(n)), destroyed(d) {}
	~Tracked() { ++*destroyed; }
};

}  // namespace

TEST_CASE("conn_table: insert and get") {
	int destroyed = 0;
	ConnTable<Tracked> table;
	CHECK(table.size() == 0);
	ConnHandle a = table.insert(std::make_unique<Tracked>("a", &destroyed));
	ConnHandle b = table.insert(std::make_unique<Tracked>("b", &destroyed));
	CHECK(a.valid());
	CHECK(b.valid());
	CHECK_FALSE(a == b);
	CHECK(table.size() == 2);
	REQUIRE(table.get(a) != nullptr);
	REQUIRE(table.get(b) != nullptr);
	CHECK(table.get(a)->name == "a");
	CHECK(table.get(b)->name == "b");
	CHECK(destroyed == 0);
}

TEST_CASE("conn_table: default and out-of-range handles find nothing") {
	ConnTable<int> table;
	ConnHandle none;
	CHECK_FALSE(none.valid());
	CHECK(table.get(none) == nullptr);
	table.insert(std::make_unique<int>(7));
	CHECK(table.get(ConnHandle{5, 0}) == nullptr);
	CHECK(table.get(ConnHandle{0, 1}) == nullptr);  // right slot, wrong generation
	REQUIRE(table.get(ConnHandle{0, 0}) != nullptr);
	CHECK(*table.get(ConnHandle{0, 0}) == 7);
	table.erase(none);  // no-op
	CHECK(table.size() == 1);
}

TEST_CASE("conn_table: inserting an empty pointer gives an invalid handle") {
	ConnTable<int> table;
	ConnHandle h = table.insert(nullptr);
	CHECK_FALSE(h.valid());
	CHECK(table.size() == 0);
}

TEST_CASE("conn_table: erase destroys the object and makes the handle stale") {
	int destroyed = 0;
	ConnTable<Tracked> table;
	ConnHandle a = table.insert(std::make_unique<Tracked>("a", &destroyed));
	ConnHandle b = table.insert(std::make_unique<Tracked>("b", &destroyed));
	table.erase(a);
	CHECK(destroyed == 1);
	CHECK(table.get(a) == nullptr);
	CHECK(table.size() == 1);
	REQUIRE(table.get(b) != nullptr);
	CHECK(table.get(b)->name == "b");
	// A second erase through the stale handle does nothing.
	table.erase(a);
	CHECK(destroyed == 1);
	CHECK(table.size() == 1);
}

TEST_CASE("conn_table: a reused slot gets a new generation") {
	int destroyed = 0;
	ConnTable<Tracked> table;
	ConnHandle old_handle = table.insert(std::make_unique<Tracked>("old", &destroyed));
	table.erase(old_handle);
	ConnHandle new_handle = table.insert(std::make_unique<Tracked>("new", &destroyed));
	CHECK(new_handle.slot == old_handle.slot);
	CHECK(new_handle.generation == old_handle.generation + 1);
	CHECK(table.get(old_handle) == nullptr);
	REQUIRE(table.get(new_handle) != nullptr);
	CHECK(table.get(new_handle)->name == "new");
	// Erasing through the stale handle must not touch the new occupant.
	table.erase(old_handle);
	CHECK(destroyed == 1);
	REQUIRE(table.get(new_handle) != nullptr);
	CHECK(table.size() == 1);
}

TEST_CASE("conn_table: a destructor looking itself up sees it gone") {
	struct SelfCheck {
		ConnTable<SelfCheck>* table;
		ConnHandle self;
		bool* found_self;
		~SelfCheck() { *found_self = table->get(self) != nullptr; }
	};
	ConnTable<SelfCheck> table;
	bool found_self = true;
	ConnHandle h = table.insert(std::make_unique<SelfCheck>(SelfCheck{&table, {}, &found_self}));
	table.get(h)->self = h;
	table.erase(h);
	CHECK_FALSE(found_self);
}

TEST_CASE("conn_table: for_each visits live objects and may erase the current one") {
	int destroyed = 0;
	ConnTable<Tracked> table;
	std::vector<ConnHandle> handles;
	for (const char* n : {"a", "b", "c", "d"})
		handles.push_back(table.insert(std::make_unique<Tracked>(n, &destroyed)));
	table.erase(handles[1]);  // "b" gone before the walk

	std::vector<std::string> seen;
	table.for_each([&](ConnHandle h, Tracked& t) {
		seen.push_back(t.name);
		CHECK(table.get(h) == &t);
		if (t.name == "a" || t.name == "c") table.erase(h);
	});
	CHECK(seen == std::vector<std::string>{"a", "c", "d"});
	CHECK(destroyed == 3);
	CHECK(table.size() == 1);
	CHECK(table.get(handles[0]) == nullptr);
	CHECK(table.get(handles[2]) == nullptr);
	REQUIRE(table.get(handles[3]) != nullptr);
	CHECK(table.get(handles[3])->name == "d");

	// Erasing everything during the walk leaves an empty table.
	table.for_each([&](ConnHandle h, Tracked&) { table.erase(h); });
	CHECK(table.size() == 0);
	CHECK(destroyed == 4);
	int visits = 0;
	table.for_each([&](ConnHandle, Tracked&) { ++visits; });
	CHECK(visits == 0);
}

TEST_CASE("conn_table: an erase during a visit destroys the object when the outermost visit returns") {
	int destroyed = 0;
	ConnTable<Tracked> table;
	ConnHandle h = table.insert(std::make_unique<Tracked>("a", &destroyed));
	CHECK_FALSE(table.visiting(h));
	bool inner_ran = false, after_erase_ran = false;
	table.visit(h, [&](Tracked& outer) {
		CHECK(table.visiting(h));
		table.visit(h, [&](Tracked& inner) {
			inner_ran = true;
			CHECK(&inner == &outer);
			// A completion that closes the object, beneath the outer visit.
			table.erase(h);
			CHECK(destroyed == 0);
		});
		// Still alive for the rest of the outer call, but stale for anyone new.
		CHECK(destroyed == 0);
		CHECK(outer.name == "a");
		CHECK(table.get(h) == nullptr);
		CHECK(table.size() == 0);
		CHECK_FALSE(table.visiting(h));
		table.visit(h, [&](Tracked&) { after_erase_ran = true; });
		table.erase(h);  // a second erase through the stale handle does nothing
	});
	CHECK(inner_ran);
	CHECK_FALSE(after_erase_ran);
	CHECK(destroyed == 1);
	// The slot is reused only now, with a new generation.
	ConnHandle next = table.insert(std::make_unique<Tracked>("b", &destroyed));
	CHECK(next.slot == h.slot);
	CHECK(next.generation == h.generation + 1);
	int walked = 0;
	table.for_each([&](ConnHandle, Tracked& t) {
		++walked;
		CHECK(t.name == "b");
	});
	CHECK(walked == 1);
}

TEST_CASE("conn_table: a visit that throws still ends, and a pending erase still happens") {
	int destroyed = 0;
	ConnTable<Tracked> table;
	ConnHandle h = table.insert(std::make_unique<Tracked>("a", &destroyed));
	CHECK_THROWS(table.visit(h, [&](Tracked&) { throw 1; }));
	CHECK_FALSE(table.visiting(h));
	REQUIRE(table.get(h) != nullptr);
	CHECK_THROWS(table.visit(h, [&](Tracked&) {
		table.erase(h);
		throw 2;
	}));
	CHECK(destroyed == 1);
	CHECK(table.get(h) == nullptr);
}

TEST_CASE("conn_table: for_each skips an object erased during its visit") {
	int destroyed = 0;
	ConnTable<Tracked> table;
	ConnHandle a = table.insert(std::make_unique<Tracked>("a", &destroyed));
	table.insert(std::make_unique<Tracked>("b", &destroyed));
	std::vector<std::string> seen;
	table.visit(a, [&](Tracked&) {
		table.erase(a);
		table.for_each([&](ConnHandle, Tracked& t) { seen.push_back(t.name); });
	});
	CHECK(seen == std::vector<std::string>{"b"});
	CHECK(destroyed == 1);
}
