#include "core/memory_trim.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstring>

namespace tern::core {

namespace {

// One mapping of /proc/self/smaps: its range, whether it maps a file
// read-only, and whether any of its pages became private anonymous copies
// (relocated data, RELRO: those hold the only copy and must stay).
struct Mapping {
	unsigned long start = 0, end = 0;
	bool file_read_only = false;
	unsigned long anonymous_kb = 0;
};

void release_if_clean(const Mapping& m) {
	// MADV_DONTNEED drops only this process's page table entries: the
	// pages stay in the page cache, and the next use maps them again
	// without reading the disk. (MADV_PAGEOUT would drop them from the
	// cache too, so that code the loop needs again later would cost a
	// disk read on the loop thread.)
	if (m.end > m.start && m.file_read_only && m.anonymous_kb == 0)
		madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED);
}

}  // namespace

void trim_startup_memory() {
	malloc_trim(0);
	FILE* smaps = std::fopen("/proc/self/smaps", "re");
	if (!smaps) return;
	char line[512];
	Mapping current;
	while (std::fgets(line, sizeof line, smaps)) {
		unsigned long start = 0, end = 0, offset = 0, inode = 0, kb = 0;
		char perms[8] = {0};
		char dev[16] = {0};
		if (std::sscanf(line, "%lx-%lx %7s %lx %15s %lu", &start, &end, perms, &offset, dev, &inode) == 6) {
			release_if_clean(current);
			// Only file-backed, non-writable mappings (code, read-only data).
			current = Mapping{start, end, inode != 0 && perms[1] != 'w', 0};
		} else if (std::sscanf(line, "Anonymous: %lu kB", &kb) == 1) {
			current.anonymous_kb = kb;
		}
	}
	release_if_clean(current);
	std::fclose(smaps);
}

}  // namespace tern::core
