#include "util/unique_fd.h"

#include <unistd.h>

namespace tern {

void UniqueFd::reset(int fd) {
	// POSIX leaves the descriptor closed even when close() fails (Linux
	// close(2)): never retried, so a reused number is never closed twice.
	if (fd_ >= 0 && fd_ != fd) ::close(fd_);
	fd_ = fd;
}

int UniqueFd::close() {
	if (fd_ < 0) return 0;
	return ::close(release());
}

void TempFile::remove() {
	if (path_.empty()) return;
	::unlink(path_.c_str());
	path_.clear();
}

}  // namespace tern
