#include "core/memory_trim.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace tern::core {

namespace {

// One mapping of /proc/self/smaps: its range, whether it maps a file
// read-only or shared, and whether any of its pages became private
// anonymous copies (relocated data, RELRO: those hold the only copy and
// must stay).
struct Mapping {
	unsigned long start = 0, end = 0;
	bool file_read_only = false;
	// MAP_SHARED of a regular file (Berkeley DB's region files __db.00N):
	// every page is the page cache's own, written back from there, so
	// dropping our mapping of it loses nothing either.
	bool file_shared = false;
	unsigned long anonymous_kb = 0;
};

void release_if_clean(const Mapping& m) {
	// MADV_DONTNEED drops only this process's page table entries: the
	// pages stay in the page cache, and the next use maps them again
	// without reading the disk. (MADV_PAGEOUT would drop them from the
	// cache too, so that code the loop needs again later would cost a
	// disk read on the loop thread.)
	if (m.end > m.start && (m.file_read_only || m.file_shared) && m.anonymous_kb == 0)
		madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED);
}

// A mapping's header line: "start-end perms offset dev inode   path".
bool parse_header(const char* line, Mapping& out) {
	unsigned long start = 0, end = 0, offset = 0, inode = 0;
	char perms[8] = {0};
	char dev[16] = {0};
	int path_at = 0;
	if (std::sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &start, &end, perms, &offset, dev, &inode, &path_at) < 6)
		return false;
	// Shared: only of a regular file, not of a device or a shared memory
	// object (those have an inode too, and their own rules).
	const char* path = line + path_at;
	bool regular_file = inode != 0 && path[0] == '/' && std::strncmp(path, "/dev/", 5) != 0 &&
	    std::strncmp(path, "/SYSV", 5) != 0 && !std::strstr(path, "(deleted)");
	out = Mapping{start, end, inode != 0 && perms[1] != 'w', regular_file && perms[3] == 's', 0};
	return true;
}

}  // namespace

void trim_startup_memory() {
	malloc_trim(0);
	FILE* smaps = std::fopen("/proc/self/smaps", "re");
	if (!smaps) return;
	char line[512];
	Mapping current;
	while (std::fgets(line, sizeof line, smaps)) {
		unsigned long kb = 0;
		Mapping next;
		if (parse_header(line, next)) {
			release_if_clean(current);
			current = next;
		} else if (std::sscanf(line, "Anonymous: %lu kB", &kb) == 1) {
			current.anonymous_kb = kb;
		}
	}
	release_if_clean(current);
	std::fclose(smaps);
}

void set_allocator_limits() {
	constexpr int own_mapping_from = 256 * 1024;
	constexpr int free_top_kept = 1024 * 1024;
	mallopt(M_MMAP_THRESHOLD, own_mapping_from);
	mallopt(M_TRIM_THRESHOLD, free_top_kept);
}

std::optional<HeapSample> sample_heap() {
	// statm: size resident shared text lib data dt, in pages.
	std::FILE* statm = std::fopen("/proc/self/statm", "re");
	if (!statm) return std::nullopt;
	long long size = 0, resident = 0, shared = 0;
	int read = std::fscanf(statm, "%lld %lld %lld", &size, &resident, &shared);
	std::fclose(statm);
	if (read != 3) return std::nullopt;
	HeapSample s;
	s.resident = (resident - shared) * sysconf(_SC_PAGESIZE);
	struct mallinfo2 info = mallinfo2();
	s.in_use = static_cast<long long>(info.uordblks + info.hblkhd);
	return s;
}

long long resident_free_growth(const HeapSample& base, const HeapSample& now) {
	return (now.resident - base.resident) - (now.in_use - base.in_use);
}

void FreeHeapTrimmer::restart() { base_ = sample_heap(); }

bool FreeHeapTrimmer::trim_if_grown(long long threshold) {
	std::optional<HeapSample> now = sample_heap();
	if (!now) return false;
	if (!base_) {
		base_ = now;
		return false;
	}
	long long grown = resident_free_growth(*base_, *now);
	// Fell for another reason: count from here, or a burst after it would
	// have to leave that much more behind before it counted.
	if (grown < 0) base_ = now;
	if (grown <= threshold) return false;
	malloc_trim(0);
	restart();
	return true;
}

}  // namespace tern::core
