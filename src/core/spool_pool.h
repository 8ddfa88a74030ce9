// Spool files for message data in transfer (data_dir/tmp), reused rather
// than created and removed for every message: a new inode per message costs
// ext4 an allocation, a directory entry and its removal, and the loop and
// the disk threads would contend on that one directory's lock.
//
// A spool file only ever holds a message in transfer. Once its bytes are in
// their Maildir (or queue) files, the disk thread that copied them truncates
// it and the loop hands it out again. The files are named `data-spool-N`,
// so a restart removes them like every leftover `data-*` file: after a
// kill -9 a spool file is never mistaken for a stored message, which lives
// only in a Maildir's new/ or cur/ or in the queue.
//
// Creating a file allocates an inode, which on a busy ext4 can take
// milliseconds: with a `filler` pool, new spool files are created on its
// workers ahead of need (whenever fewer than `low_water` are spare), so the
// loop only opens existing ones. It still creates one itself when none is
// ready (a burst of new sessions).
//
// A spare file given back open (by the filler that created it, or by the
// disk thread that emptied it with ftruncate) stays open here, so handing
// it out costs the loop no open(2) and no fstat(2); a bounded number of
// them, so that idle spares do not hold many descriptors.
//
// Spool files are open for reading and appending (O_APPEND): the session
// writes the message at the end, the Maildir writer reads it with
// positional reads, and after ftruncate(2) to 0 the next message starts at
// offset 0 again without a seek.
//
// acquire() and release() run on the loop thread only; is_spool() is pure.
#pragma once
#include <fcntl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/worker_pool.h"
#include "util/unique_fd.h"

namespace tern::core {

// A written spool file handed from the session to the Maildir writer with
// its descriptor still open and the number of bytes written, so the disk
// thread neither opens the file by path nor asks its size. Whoever holds
// it owns the descriptor; the pool gets the file back only from the
// writer's completion, so no other message can write it while it is read.
struct SpoolFile {
	UniqueFd fd;  // open for reading; none when the file must be opened by path
	uint64_t size = 0;
};

class SpoolPool {
public:
	// Truncated spool files kept for reuse at most; more are removed.
	static constexpr size_t max_spare = 256;
	// Fewer spare files than this start a top-up of fill_batch on the filler.
	static constexpr size_t low_water = 8;
	static constexpr size_t fill_batch = 16;
	// Spare files kept open at most; others are opened when handed out.
	static constexpr size_t max_open_spare = 64;
	// How every spool file is opened (O_CREAT | O_EXCL added to create one).
	static constexpr int spool_open_flags = O_RDWR | O_APPEND | O_CLOEXEC;

	// The filler's completions call back into this object: it must outlive
	// the filler's running loop (declared after it, destroyed before it).
	explicit SpoolPool(std::string dir, WorkerPool* filler = nullptr)
		: dir_(std::move(dir)), prefix_(dir_ + "/data-spool-"), filler_(filler) {}
	// A clean stop leaves no spare files behind in tmp/ (files still being
	// read or filled when the loop ended are left to the next start).
	~SpoolPool();
	SpoolPool(const SpoolPool&) = delete;
	SpoolPool& operator=(const SpoolPool&) = delete;

	// An empty spool file open for reading and appending: a spare one when
	// there is one, else a new one. Returns the fd and sets path; an empty
	// UniqueFd with errno set when no file could be opened or created.
	UniqueFd acquire(std::string& path);
	// Takes back a spool file no reader uses any more. With `fd` the caller
	// vouches that the file is empty and fd is open with spool_open_flags
	// (it is handed out as it is); without, the file is checked when it is
	// handed out.
	void release(const std::string& path, UniqueFd fd = {});
	// Whether path names one of this pool's files (safe on any thread).
	bool is_spool(const std::string& path) const { return path.rfind(prefix_, 0) == 0; }

	size_t spare() const { return spare_.size(); }

private:
	struct Spare {
		std::string path;
		UniqueFd fd;  // open and empty, or none
	};
	UniqueFd take_spare(std::string& path);
	UniqueFd create(std::string& path);
	std::string next_name();
	void top_up();

	std::string dir_;
	std::string prefix_;
	WorkerPool* filler_;
	bool filling_ = false;
	std::vector<Spare> spare_;
	size_t open_spare_ = 0;
	uint64_t next_ = 0;
};

}  // namespace tern::core
