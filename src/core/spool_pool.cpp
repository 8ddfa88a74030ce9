#include "core/spool_pool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

namespace tern::core {

SpoolPool::~SpoolPool() {
	for (const Spare& spare : spare_) ::unlink(spare.path.c_str());
}

UniqueFd SpoolPool::acquire(std::string& path) {
	UniqueFd fd = take_spare(path);
	if (!fd) fd = create(path);
	int saved_errno = errno;
	top_up();
	errno = saved_errno;
	return fd;
}

UniqueFd SpoolPool::take_spare(std::string& path) {
	while (!spare_.empty()) {
		Spare spare = std::move(spare_.back());
		spare_.pop_back();
		path = std::move(spare.path);
		if (spare.fd) {
			--open_spare_;
			return std::move(spare.fd);
		}
		// No O_CREAT: a spare that disappeared (removed by hand) is skipped.
		UniqueFd fd(::open(path.c_str(), spool_open_flags));
		if (!fd) continue;
		// Released files are empty; one that is not (a truncate that did not
		// happen) must not lend its old bytes to the next message.
		struct stat st;
		if (::fstat(fd.get(), &st) == 0 && st.st_size == 0) return fd;
		fd.reset();
		::unlink(path.c_str());
	}
	return UniqueFd{};
}

UniqueFd SpoolPool::create(std::string& path) {
	for (;;) {
		path = next_name();
		UniqueFd fd(::open(path.c_str(), spool_open_flags | O_CREAT | O_EXCL, 0600));
		if (fd || errno != EEXIST) {
			if (!fd) path.clear();
			return fd;
		}
	}
}

std::string SpoolPool::next_name() { return prefix_ + std::to_string(::getpid()) + "-" + std::to_string(++next_); }

void SpoolPool::top_up() {
	if (!filler_ || filling_ || spare_.size() >= low_water) return;
	filling_ = true;
	// Named here: the counter belongs to the loop thread.
	auto files = std::make_shared<std::vector<Spare>>();
	for (size_t i = 0; i < fill_batch; ++i) files->push_back(Spare{next_name(), UniqueFd{}});
	filler_->submit(
	    [files] {
		    std::vector<Spare> created;
		    for (Spare& file : *files) {
			    // Kept open: the loop writes it without opening it. One that
			    // fails is left out; the loop creates its own when none is spare.
			    file.fd.reset(::open(file.path.c_str(), spool_open_flags | O_CREAT | O_EXCL, 0600));
			    if (file.fd) created.push_back(std::move(file));
		    }
		    files->swap(created);
	    },
	    [this, files] {
		    filling_ = false;
		    for (Spare& file : *files) release(file.path, std::move(file.fd));
	    });
}

void SpoolPool::release(const std::string& path, UniqueFd fd) {
	if (spare_.size() >= max_spare) {
		::unlink(path.c_str());
		return;
	}
	if (fd && open_spare_ >= max_open_spare) fd.reset();
	if (fd) ++open_spare_;
	spare_.push_back(Spare{path, std::move(fd)});
}

}  // namespace tern::core
