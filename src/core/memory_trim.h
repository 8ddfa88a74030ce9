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

// glibc's defaults let a burst's memory stay with the process: after a
// large block (a message read whole, a big reply) is freed, the threshold
// for giving blocks their own mapping rises to its size (up to 32 MiB) and
// a thread's arena keeps twice that free at its top, which malloc_trim
// does not shrink (it trims only the main arena's top). Fixed thresholds
// (blocks of 256 KiB and more mapped on their own, an arena's top over
// 1 MiB given back on free) keep each worker's arena to what its jobs
// hold. Called once at start, before any thread.
void set_allocator_limits();

// After a burst (thousands of connections come and gone) the memory it
// touched stays with the process: free heap inside the arenas, and the
// pages of code and of Berkeley DB's region files that it faulted in.
// When the resident size grew by more than `slack_kb` since the last trim,
// run() gives them back (malloc_trim, then the mappings as at start-up)
// and returns true. For an idle daemon: the trim walks the heap and the
// mappings, a few milliseconds after a burst.
class IdleTrim {
public:
	explicit IdleTrim(long slack_kb) : slack_kb_(slack_kb) {}
	bool run();

private:
	long slack_kb_;
	long resident_after_last_kb_ = -1;  // -1: not trimmed yet
};

// Resident kB of this process (/proc/self/statm), -1 when unreadable.
long resident_kb();

}  // namespace tern::core
