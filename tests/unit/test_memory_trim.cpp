// The trims of core/memory_trim.h: the start-up trim gives back the
// mappings of code the process touched, and never the pages that hold the
// only copy of something (relocated data), so the program runs on as
// before; the heap trim gives back the free heap a burst left behind, in
// the main heap and in a worker thread's.
#include <doctest/doctest.h>

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/memory_trim.h"

namespace {

// Resident kB of this test binary's mappings: its code (r-xp) and the
// read-only mappings that hold private copies (relocated data).
struct OwnResident {
	long code_kb = 0, private_copies_kb = 0;
};

OwnResident own_resident() {
	std::ifstream smaps("/proc/self/smaps");
	std::string line, self_path;
	char buf[4096];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	if (n > 0) self_path.assign(buf, size_t(n));
	OwnResident r;
	bool own = false, code = false;
	while (std::getline(smaps, line)) {
		std::istringstream fields(line);
		std::string range, perms, offset, dev, inode, path;
		if (line.find('-') < line.find(' ') && (fields >> range >> perms >> offset >> dev >> inode)) {
			fields >> path;
			own = !self_path.empty() && path == self_path;
			code = perms == "r-xp";
		} else if (own && code && line.rfind("Rss:", 0) == 0) {
			r.code_kb += std::atol(line.c_str() + 4);
		} else if (own && !code && line.rfind("Anonymous:", 0) == 0) {
			r.private_copies_kb += std::atol(line.c_str() + 10);
		}
	}
	return r;
}

struct Shape {
	virtual ~Shape() = default;
	virtual std::string name() const = 0;
};
struct Circle : Shape {
	std::string name() const override { return "circle"; }
};

}  // namespace

TEST_CASE("trim_startup_memory gives back code mappings and keeps relocated data") {
	OwnResident before = own_resident();
	REQUIRE(before.code_kb > 0);
	tern::core::trim_startup_memory();
	OwnResident after = own_resident();
	// The code this test runs comes back (a minor fault), the rest stays
	// out of the mapping; the private copies stay where they are.
	CHECK(after.code_kb < before.code_kb);
	CHECK(after.private_copies_kb == before.private_copies_kb);
	// Virtual calls through vtables (relocated data), library calls through
	// the GOT, and allocation still work.
	std::unique_ptr<Shape> s = std::make_unique<Circle>();
	CHECK(s->name() == "circle");
	char text[32];
	std::snprintf(text, sizeof text, "%s-%d", s->name().c_str(), 7);
	CHECK(std::strcmp(text, "circle-7") == 0);
}

namespace {

long resident_kb() {
	std::ifstream statm("/proc/self/statm");
	long size = 0, resident = 0;
	statm >> size >> resident;
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace

TEST_CASE("resident_free_growth: resident growth that memory in use does not explain") {
	using tern::core::HeapSample;
	using tern::core::resident_free_growth;
	const HeapSample base{100 << 20, 20 << 20};
	// Connections open: resident and in use grow together, nothing free.
	CHECK(resident_free_growth(base, {140 << 20, 60 << 20}) == 0);
	// They close: in use falls back, the pages stay resident.
	CHECK(resident_free_growth(base, {140 << 20, 20 << 20}) == 40 << 20);
	// A block with a mapping of its own, freed: both fall, nothing free.
	CHECK(resident_free_growth(base, {100 << 20, 20 << 20}) == 0);
	// The start-up trim gave code pages back: negative.
	CHECK(resident_free_growth(base, {95 << 20, 20 << 20}) == -(5 << 20));
}

TEST_CASE("FreeHeapTrimmer gives back the free heap a burst left behind, over its threshold only, once") {
#ifdef __SANITIZE_ADDRESS__
	// AddressSanitizer replaces glibc's allocator: there is no glibc heap to
	// trim, and mallinfo2 reads zeros (make check-sanitized).
	MESSAGE("skipped: glibc's allocator is replaced by AddressSanitizer");
	return;
#endif
	tern::core::FreeHeapTrimmer trimmer;
	// A burst: many small blocks, of which every fiftieth stays (a few
	// connections outlive it), so that glibc cannot give the freed ones
	// back by shrinking the heap's top.
	std::vector<std::unique_ptr<char[]>> burst, survivors;
	for (int i = 0; i < 40000; ++i) {
		burst.emplace_back(new char[1000]);
		std::memset(burst.back().get(), 1, 1000);
	}
	for (size_t i = 0; i < burst.size(); i += 50) survivors.push_back(std::move(burst[i]));
	burst.clear();
	long before = resident_kb();
	CHECK_FALSE(trimmer.trim_if_grown(1ll << 40));  // under the threshold: nothing done
	CHECK(trimmer.trim_if_grown(1 << 20));
	long after = resident_kb();
	INFO("resident kB before " << before << ", after " << after);
	CHECK(before - after > 20000);
	// The trimmed chunks still count as free to mallinfo2; nothing became
	// resident since, so there is no second walk through the heaps.
	CHECK_FALSE(trimmer.trim_if_grown(1 << 20));
	// The survivors go, and the same blocks are taken and freed again.
	survivors.clear();
	for (int i = 0; i < 40000; ++i) {
		burst.emplace_back(new char[1000]);
		std::memset(burst.back().get(), 1, 1000);
	}
	for (size_t i = 0; i < burst.size(); i += 50) survivors.push_back(std::move(burst[i]));
	burst.clear();
	CHECK(trimmer.trim_if_grown(1 << 20));
}

TEST_CASE("FreeHeapTrimmer with the allocator limits gives back what a worker thread's burst left behind") {
#ifdef __SANITIZE_ADDRESS__
	MESSAGE("skipped: glibc's allocator is replaced by AddressSanitizer");
	return;
#endif
	tern::core::set_allocator_limits();
	malloc_trim(0);
	tern::core::FreeHeapTrimmer trimmer;
	const long baseline = resident_kb();
	// A burst on a thread of its own (its own heap, as a worker's): many
	// small blocks, of which every fiftieth outlives the burst (the heap
	// cannot go away whole), then two large blocks one after the other
	// (messages read whole: with glibc's defaults the first raises the
	// size from which blocks get a mapping of their own, so the second is
	// carved from the heap and stays free at its top, which malloc_trim
	// does not shrink).
	std::vector<std::unique_ptr<char[]>> survivors;
	std::thread worker([&survivors] {
		std::vector<std::unique_ptr<char[]>> burst;
		for (int i = 0; i < 40000; ++i) {
			burst.emplace_back(new char[1000]);
			std::memset(burst.back().get(), 1, 1000);
		}
		for (size_t i = 0; i < burst.size(); i += 50) survivors.push_back(std::move(burst[i]));
		burst.clear();
		for (size_t size : {size_t(16) << 20, size_t(12) << 20}) {
			std::unique_ptr<char[]> large(new char[size]);
			std::memset(large.get(), 1, size);
		}
	});
	worker.join();
	long before = resident_kb();
	CHECK(trimmer.trim_if_grown(1 << 20));
	long after = resident_kb();
	INFO("resident kB at the baseline " << baseline << ", after the burst " << before << ", trimmed " << after);
	CHECK(before - after > 20000);
	CHECK(after - baseline < 6000);  // the survivors' pages, not a block of 12 MiB
}
