#include "core/memory_trim.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstring>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21  // Linux 5.4
#endif

namespace tern::core {

void trim_startup_memory() {
	malloc_trim(0);
	FILE* maps = std::fopen("/proc/self/maps", "re");
	if (!maps) return;
	char line[512];
	while (std::fgets(line, sizeof line, maps)) {
		unsigned long start = 0, end = 0;
		char perms[8] = {0};
		unsigned long offset = 0;
		char dev[16] = {0};
		unsigned long inode = 0;
		if (std::sscanf(line, "%lx-%lx %7s %lx %15s %lu", &start, &end, perms, &offset, dev, &inode) != 6)
			continue;
		// Only file-backed, non-writable mappings (code, read-only data):
		// paging them out loses nothing, they are read back from the file.
		if (inode == 0 || perms[1] == 'w') continue;
		madvise(reinterpret_cast<void*>(start), end - start, MADV_PAGEOUT);
	}
	std::fclose(maps);
}

}  // namespace tern::core
