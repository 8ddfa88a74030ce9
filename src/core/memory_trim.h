// Gives back the memory that start-up touched but the idle daemon does not
// use: free heap (malloc_trim), and the mappings of code and read-only
// pages of the binary and its libraries that were faulted in while opening
// the database, loading keys and certificates (MADV_DONTNEED on mappings
// that hold no private copies: the pages stay in the page cache, and those
// the loop uses again come back by a minor fault, with no disk read).
// Called once after start-up; the low-memory VPS target is measured at
// idle.
#pragma once
#include <cstddef>

namespace tern::core {

void trim_startup_memory();

// After a burst (thousands of connections come and gone) the heap's free
// memory stays with the process: glibc gives back only the top of the heap
// by itself. When more than `threshold` bytes are free, malloc_trim(0)
// returns them; true when it ran. For an idle daemon: the trim walks the
// heap, a few milliseconds for one the size of a burst.
bool trim_free_heap(size_t threshold);

}  // namespace tern::core
