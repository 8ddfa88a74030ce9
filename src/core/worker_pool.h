// A small pool of worker threads for blocking work (fsync'd writes, later
// Berkeley DB transactions and DKIM crypto). A job's `work` runs on a worker
// thread with only the inputs it captured (never a connection); its `done`
// runs later on the loop thread, delivered through one ev_async. Completions
// of many jobs are drained in one loop iteration.
#pragma once
#include <semaphore.h>

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

struct ev_loop;
struct ev_async;

namespace tern::core {

class WorkerPool {
public:
	// threads = 0 picks min(number of cores, 4), at least 1. The threads are
	// named `name` (at most 15 characters) so that top, perf and /proc tell
	// the pools apart.
	WorkerPool(struct ev_loop* loop, unsigned threads = 0, const char* name = "tern-worker");
	~WorkerPool();  // stops the threads after finishing queued jobs
	WorkerPool(const WorkerPool&) = delete;
	WorkerPool& operator=(const WorkerPool&) = delete;

	// `work` runs on a worker; `done` on the loop thread after it. Exceptions
	// from `work` are caught; `done` then sees them through its own captures
	// (callers store results/errors in shared state they captured). Any
	// thread may submit (a disk thread starts the history records of the
	// copies it renamed, server/deliver.cpp).
	void submit(std::function<void()> work, std::function<void()> done);

	// Jobs submitted but not completed (for the tern_worker_jobs_queued gauge).
	size_t pending() const;
	// Blocks the caller until every submitted job's `done` has run; used at
	// shutdown only, never on the loop thread during service.
	void drain();

private:
	struct Job {
		std::function<void()> work;
		std::function<void()> done;
	};
	void run_worker();
	static void on_async(struct ev_loop*, ev_async*, int);
	void deliver_completions();

	struct ev_loop* loop_;
	ev_async* async_;
	mutable std::mutex mu_;
	// One token per queued job (and one per thread at shutdown). A worker
	// sleeps on it, not on a condition variable: waking from
	// pthread_cond_wait takes the mutex as contended, so the next unlock
	// costs a futex system call per job even when nobody waits. A POSIX
	// semaphore posts with a system call only when a worker sleeps, and
	// waits without spinning (std::counting_semaphore spins on sched_yield).
	sem_t queued_;
	std::deque<Job> jobs_;
	std::vector<Job> completed_;
	std::vector<std::thread> threads_;
	// Counted apart from the mutex: submit (on any thread) counts a job
	// before queueing it, the loop uncounts it once per completion, and
	// the metrics and drain() read it; none needs the queues.
	std::atomic<size_t> pending_{0};
};

}  // namespace tern::core
