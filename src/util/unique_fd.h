// Ownership of file descriptors and temporary files by type: a UniqueFd
// closes its descriptor when it goes, a TempFile removes its file unless
// the file was committed (renamed into place, or handed on). Code that
// owns either never writes close() or unlink() bookkeeping by hand, and no
// fd value carries a second meaning.
#pragma once
#include <string>
#include <utility>

namespace tern {

class UniqueFd {
public:
	UniqueFd() = default;
	explicit UniqueFd(int fd) : fd_(fd) {}
	~UniqueFd() { reset(); }
	UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
	UniqueFd& operator=(UniqueFd&& other) noexcept {
		if (this != &other) reset(other.release());
		return *this;
	}
	UniqueFd(const UniqueFd&) = delete;
	UniqueFd& operator=(const UniqueFd&) = delete;

	int get() const { return fd_; }
	bool valid() const { return fd_ >= 0; }
	explicit operator bool() const { return valid(); }
	// Gives the descriptor up without closing it.
	int release() { return std::exchange(fd_, -1); }
	// Closes the descriptor held (if any) and takes `fd`.
	void reset(int fd = -1);
	// Closes now and reports close()'s result (0, or -1 with errno set), for
	// callers that must know a write-back error; 0 when empty.
	int close();

private:
	int fd_ = -1;
};

// A file that exists only until its owner commits it: removed when the
// guard goes (an exception, an early return), kept after commit().
class TempFile {
public:
	TempFile() = default;
	explicit TempFile(std::string path) : path_(std::move(path)) {}
	~TempFile() { remove(); }
	TempFile(TempFile&& other) noexcept : path_(std::exchange(other.path_, std::string())) {}
	TempFile& operator=(TempFile&& other) noexcept {
		if (this != &other) {
			remove();
			path_ = std::exchange(other.path_, std::string());
		}
		return *this;
	}
	TempFile(const TempFile&) = delete;
	TempFile& operator=(const TempFile&) = delete;

	const std::string& path() const { return path_; }
	bool armed() const { return !path_.empty(); }
	// The file stays: it was renamed into place or someone else owns it now.
	// Returns the path it had.
	std::string commit() { return std::exchange(path_, std::string()); }
	// Removes the file now (if still armed); the guard is empty afterwards.
	void remove();

private:
	std::string path_;
};

}  // namespace tern
