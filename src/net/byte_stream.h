// The bytes under a transport (doc/design.md "The transport"): a
// non-blocking socket in the daemon, a script in the session tests and the
// session fuzzer. Nothing here blocks: a stream that has nothing to give or
// no room says so and the loop waits.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "util/unique_fd.h"

namespace tern::net {

enum class IoStatus {
	ok,          // the operation completed (see each method for partial counts)
	want_read,   // wait until the stream is readable, then call the same method again
	want_write,  // wait until the stream is writable, then call the same method again
	closed,      // the peer closed the connection (close_notify, EOF or reset)
	error,       // fatal; last_error() says why; drop the connection
};

class ByteStream {
public:
	virtual ~ByteStream() = default;
	// ok with 1..cap bytes in n; want_read when nothing is there yet; closed
	// at the end of the stream; error otherwise (a reset included).
	virtual IoStatus read(char* buf, std::size_t cap, std::size_t& n) = 0;
	// ok with 1..len bytes taken (n, maybe fewer than len); want_write when
	// none fit; closed when the peer is gone (EPIPE, reset); error otherwise.
	virtual IoStatus write(const char* buf, std::size_t len, std::size_t& n) = 0;
	// The descriptor the loop watches; -1 for a stream without one (a
	// script), which its driver pumps itself.
	virtual int fd() const { return -1; }
	// Why the last call returned closed or error.
	virtual std::string last_error() const = 0;
};

// A socket whose owner outlives the stream that reads and writes it.
struct BorrowedFd {
	int fd;
};

// A connected non-blocking socket: owned (closed when the stream goes) or
// borrowed.
class FdStream : public ByteStream {
public:
	explicit FdStream(UniqueFd fd) : owned_(std::move(fd)), fd_(owned_.get()) {}
	explicit FdStream(BorrowedFd fd) : fd_(fd.fd) {}
	FdStream(const FdStream&) = delete;
	FdStream& operator=(const FdStream&) = delete;
	IoStatus read(char* buf, std::size_t cap, std::size_t& n) override;
	IoStatus write(const char* buf, std::size_t len, std::size_t& n) override;
	int fd() const override { return fd_; }
	std::string last_error() const override { return error_; }

private:
	UniqueFd owned_;
	int fd_;
	std::string error_;
};

}  // namespace tern::net
