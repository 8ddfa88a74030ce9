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
#include <optional>

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

// What the process holds in memory and what of it malloc has handed out,
// read together.
struct HeapSample {
	// Resident bytes of the process that are neither file pages nor shared
	// (/proc/self/statm: resident minus shared): the code and Berkeley DB's
	// region files come and go without saying anything about the heap.
	long long resident = 0;
	long long in_use = 0;  // bytes handed out by malloc in all heaps and own mappings (mallinfo2)
};
// Empty when /proc/self/statm cannot be read (no descriptor left).
std::optional<HeapSample> sample_heap();

// How much free heap may have become resident since `base`, sampled right
// after the last trim (which left none): the growth of resident memory
// that the growth of memory in use does not explain. Memory in use is
// resident; what was freed since stays so until a trim, and a block taken
// from pages the last trim gave back makes them resident again, in use,
// then free. Other growth counts too (a thread's stack, a worker heap's
// free top, which malloc_trim leaves and glibc gives back by itself past
// 1 MiB; memory handed out but not yet touched counts the other way):
// such a trim finds little, and costs a walk through the heaps. Negative
// when resident memory fell by more than memory in use (a heap's top
// given back).
long long resident_free_growth(const HeapSample& base, const HeapSample& now);

// After a burst (thousands of connections come and gone) the heap's free
// memory stays with the process: glibc gives back only the top of the heap
// by itself. malloc_trim(0) returns the free pages inside every thread's
// heap; it walks them all (a few milliseconds for heaps the size of a
// burst), and a trimmed free chunk still counts as free to mallinfo2, so
// the free total cannot say whether there is anything left to give back:
// the trimmer remembers the sample after its last trim instead.
class FreeHeapTrimmer {
public:
	FreeHeapTrimmer() { restart(); }
	// Counts from now (after the start-up trim, which gives back much
	// that was not heap).
	void restart();
	// Trims when more than `threshold` bytes of free heap may have become
	// resident since the last trim (or since this trimmer was made, or
	// since resident memory last fell below what its use explains); true
	// when it ran. Without a sample (statm unreadable) nothing is done.
	bool trim_if_grown(long long threshold);

private:
	std::optional<HeapSample> base_;
};

}  // namespace tern::core
