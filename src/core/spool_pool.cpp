#include "core/spool_pool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace tern::core {

UniqueFd SpoolPool::acquire(std::string& path) {
	while (!spare_.empty()) {
		path = std::move(spare_.back());
		spare_.pop_back();
		// No O_CREAT: a spare that disappeared (removed by hand) is skipped.
		UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
		if (!fd) continue;
		// Released files are empty; one that is not (a truncate that did not
		// happen) must not lend its old bytes to the next message.
		struct stat st;
		if (::fstat(fd.get(), &st) == 0 && st.st_size == 0) return fd;
		fd.reset();
		::unlink(path.c_str());
	}
	for (;;) {
		path = prefix_ + std::to_string(::getpid()) + "-" + std::to_string(++next_);
		UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
		if (fd || errno != EEXIST) {
			if (!fd) path.clear();
			return fd;
		}
	}
}

void SpoolPool::release(const std::string& path) {
	if (spare_.size() < max_spare)
		spare_.push_back(path);
	else
		::unlink(path.c_str());
}

}  // namespace tern::core
