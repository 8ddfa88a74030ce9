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

// glibc's defaults let a burst's memory stay with the process: once a
// large block (a message read whole, a big reply) that had a mapping of
// its own is freed, the size from which blocks get one rises to its size
// (up to 32 MiB), and a thread's heap keeps free at its top up to twice
// that, which malloc_trim does not shrink (it trims only the main heap's
// top). Fixed thresholds instead: a block of 256 KiB or more that the
// heap cannot serve from memory it already has gets a mapping of its own,
// and a heap whose free top exceeds 1 MiB gives it back when a block is
// freed into it. Called once at start, before any thread; it replaces
// what MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment
// would set.
void set_allocator_limits();

// After a burst (thousands of connections come and gone) the heap's free
// memory stays with the process: glibc gives back only the top of the heap
// by itself. When more than `threshold` bytes are free in all the heaps
// together (mallinfo2 sums every thread's), malloc_trim(0) returns the
// free pages inside them; true when it ran. For an idle daemon: the trim
// walks the heaps, a few milliseconds for ones the size of a burst.
bool trim_free_heap(size_t threshold);

}  // namespace tern::core
