// Worker pool: blocking jobs on a few threads, completions back on the loop
// thread through one ev_async (doc/design.md "Worker pool").
#include "core/worker_pool.h"

#include <ev.h>
#include <pthread.h>

#include <algorithm>
#include <exception>
#include <string>

#include "util/log.h"

namespace tern::core {

namespace {

unsigned default_thread_count() {
	// hardware_concurrency may report 0 when it cannot tell.
	unsigned cores = std::thread::hardware_concurrency();
	return std::clamp(cores, 1u, 4u);
}

}  // namespace

WorkerPool::WorkerPool(struct ev_loop* loop, unsigned threads, const char* name) : loop_(loop), async_(new ev_async) {
	sem_init(&queued_, 0, 0);
	ev_async_init(async_, &WorkerPool::on_async);
	async_->data = this;
	ev_async_start(loop_, async_);
	// The watcher alone must not keep ev_run alive: a loop whose only
	// remaining watcher is the pool's should return (libev "ev_ref/ev_unref").
	ev_unref(loop_);

	if (threads == 0) threads = default_thread_count();
	threads_.reserve(threads);
	for (unsigned i = 0; i < threads; ++i) {
		threads_.emplace_back([this] { run_worker(); });
		pthread_setname_np(threads_.back().native_handle(), name);
	}
}

WorkerPool::~WorkerPool() {
	// A token each, after those of the queued jobs: a worker that finds the
	// queue empty stops, so the queued jobs are finished first; their
	// completions are dropped with the pool.
	for (size_t i = 0; i < threads_.size(); ++i) sem_post(&queued_);
	for (std::thread& t : threads_) t.join();
	sem_destroy(&queued_);
	// Undo the ev_unref of the constructor before stopping, as libev requires.
	ev_ref(loop_);
	ev_async_stop(loop_, async_);
	delete async_;
}

void WorkerPool::submit(std::function<void()> work, std::function<void()> done) {
	// Counted before it is queued: a job submitted from another thread
	// could otherwise complete on the loop before it counts, and drain()
	// see no job pending while one is.
	pending_.fetch_add(1, std::memory_order_relaxed);
	{
		std::lock_guard lock(mu_);
		jobs_.push_back(Job{std::move(work), std::move(done)});
	}
	// A system call only when a worker sleeps for want of jobs.
	sem_post(&queued_);
}

size_t WorkerPool::pending() const { return pending_.load(std::memory_order_relaxed); }

void WorkerPool::drain() {
	// While draining the async watcher must count as active, or ev_run would
	// see no active watchers and poll with a zero timeout (a busy loop).
	ev_ref(loop_);
	while (pending() > 0) ev_run(loop_, EVRUN_ONCE);
	ev_unref(loop_);
}

void WorkerPool::run_worker() {
	for (;;) {
		Job job;
		// EINTR (a signal handler ran on this thread) is its only failure.
		while (sem_wait(&queued_) != 0) continue;
		{
			std::lock_guard lock(mu_);
			// Every job came with its token, so an empty queue means a
			// shutdown token: nothing is left to do.
			if (jobs_.empty()) return;
			job = std::move(jobs_.front());
			jobs_.pop_front();
		}
		try {
			if (job.work) job.work();
		} catch (const std::exception& e) {
			log::error("worker job failed", {{"error", e.what()}});
		} catch (...) {
			log::error("worker job failed", {{"error", "unknown exception"}});
		}
		job.work = nullptr;  // release captured inputs on the worker
		{
			std::lock_guard lock(mu_);
			completed_.push_back(std::move(job));
		}
		// Coalesces: many completions before the loop wakes make one callback.
		ev_async_send(loop_, async_);
	}
}

void WorkerPool::on_async(struct ev_loop*, ev_async* watcher, int) {
	static_cast<WorkerPool*>(watcher->data)->deliver_completions();
}

void WorkerPool::deliver_completions() {
	std::vector<Job> batch;
	{
		std::lock_guard lock(mu_);
		batch.swap(completed_);
	}
	// `done` runs outside the lock: it may submit new jobs.
	for (Job& job : batch) {
		try {
			if (job.done) job.done();
		} catch (const std::exception& e) {
			log::error("worker completion failed", {{"error", e.what()}});
		} catch (...) {
			log::error("worker completion failed", {{"error", "unknown exception"}});
		}
		job.done = nullptr;
		pending_.fetch_sub(1, std::memory_order_relaxed);
	}
}

}  // namespace tern::core
