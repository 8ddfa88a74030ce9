// The octets of one BDAT chunk (RFC 3030 2): exactly the announced number of
// octets follow the command line, as binary data with no dot-stuffing and no
// end marker, so nothing in them can end the message early (no SMTP
// smuggling by construction). The reader only counts: it says how many of
// the buffered input octets belong to the chunk, the rest is the next
// command. Pure, no I/O.
#pragma once
#include <cstddef>
#include <cstdint>

namespace tern::smtp {

class ChunkReader {
public:
	// A new chunk of `size` octets; `last` when it was sent with LAST.
	void start(uint64_t size, bool last) {
		size_ = size;
		left_ = size;
		last_ = last;
	}
	// Of `available` buffered octets, how many belong to the chunk; they
	// count as read.
	size_t take(size_t available) {
		size_t n = left_ < available ? static_cast<size_t>(left_) : available;
		left_ -= n;
		return n;
	}
	bool complete() const { return left_ == 0; }
	bool last() const { return last_; }
	uint64_t size() const { return size_; }
	uint64_t left() const { return left_; }

private:
	uint64_t size_ = 0;
	uint64_t left_ = 0;
	bool last_ = false;
};

}  // namespace tern::smtp
