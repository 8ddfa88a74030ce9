// WorkerPool: jobs on worker threads, completions on the loop thread.
#include <doctest/doctest.h>

#include <ev.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/worker_pool.h"

using tern::core::WorkerPool;

namespace {

// A private loop per test, so tests never share watchers.
struct Loop {
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	~Loop() { ev_loop_destroy(loop); }
};

}  // namespace

TEST_CASE("worker_pool: many jobs run on workers and complete on the loop thread") {
	Loop l;
	const std::thread::id loop_thread = std::this_thread::get_id();
	constexpr int job_count = 200;
	std::mutex mu;
	std::set<std::thread::id> work_threads;
	std::vector<int> results(job_count, -1);
	int done_count = 0;
	int done_off_loop = 0;
	{
		WorkerPool pool(l.loop, 3);
		for (int i = 0; i < job_count; ++i) {
			auto value = std::make_shared<int>(0);
			pool.submit(
			    [i, value, &mu, &work_threads] {
				    *value = i * 2;
				    std::lock_guard lock(mu);
				    work_threads.insert(std::this_thread::get_id());
			    },
			    [i, value, &results, &done_count, &done_off_loop, loop_thread] {
				    results[i] = *value;
				    ++done_count;
				    if (std::this_thread::get_id() != loop_thread) ++done_off_loop;
			    });
		}
		CHECK(pool.pending() > 0);
		pool.drain();
		CHECK(pool.pending() == 0);
	}
	CHECK(done_count == job_count);
	CHECK(done_off_loop == 0);
	for (int i = 0; i < job_count; ++i) CHECK(results[i] == i * 2);
	CHECK(work_threads.count(loop_thread) == 0);
	CHECK(work_threads.size() >= 1);
	CHECK(work_threads.size() <= 3);
}

TEST_CASE("worker_pool: an exception in work still gets done called") {
	Loop l;
	WorkerPool pool(l.loop, 1);
	bool first_done = false, second_done = false;
	auto second_ran = std::make_shared<bool>(false);
	pool.submit([] { throw std::runtime_error("disk on fire"); }, [&] { first_done = true; });
	pool.submit([] { throw 42; }, [&] { second_done = true; });
	// The worker survives: a later job still runs on it.
	bool third_done = false;
	pool.submit([second_ran] { *second_ran = true; }, [&] { third_done = true; });
	pool.drain();
	CHECK(first_done);
	CHECK(second_done);
	CHECK(third_done);
	CHECK(*second_ran);
	CHECK(pool.pending() == 0);
}

TEST_CASE("worker_pool: pending counts submitted jobs until their done ran") {
	Loop l;
	WorkerPool pool(l.loop, 2);
	CHECK(pool.pending() == 0);
	std::atomic<bool> release{false};
	std::atomic<int> finished_work{0};
	int done_count = 0;
	for (int i = 0; i < 5; ++i) {
		pool.submit(
		    [&] {
			    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
			    ++finished_work;
		    },
		    [&] { ++done_count; });
	}
	CHECK(pool.pending() == 5);
	release = true;
	// Work may finish, but done only runs on the loop thread: still pending.
	while (finished_work < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
	CHECK(pool.pending() == 5);
	CHECK(done_count == 0);
	pool.drain();
	CHECK(pool.pending() == 0);
	CHECK(done_count == 5);
}

TEST_CASE("worker_pool: a done may submit more work and drain waits for it") {
	Loop l;
	WorkerPool pool(l.loop, 2);
	int chain = 0;
	std::function<void()> step = [&] {
		if (++chain < 10) pool.submit([] {}, step);
	};
	pool.submit([] {}, step);
	pool.drain();
	CHECK(chain == 10);
	CHECK(pool.pending() == 0);
}

TEST_CASE("worker_pool: zero threads picks a default and works") {
	Loop l;
	WorkerPool pool(l.loop);
	bool done = false;
	pool.submit([] {}, [&] { done = true; });
	pool.drain();
	CHECK(done);
}

TEST_CASE("worker_pool: the async watcher alone does not keep ev_run alive") {
	Loop l;
	WorkerPool pool(l.loop, 1);
	// With no other watchers the loop counts nothing active, so ev_run would
	// return at once instead of blocking (ev_run returns the active count).
	CHECK(ev_run(l.loop, EVRUN_NOWAIT) == 0);

	// A loop that has other work delivers completions during a normal ev_run.
	bool done = false;
	ev_timer stopper;
	ev_timer_init(
	    &stopper, [](struct ev_loop* loop, ev_timer*, int) { ev_break(loop, EVBREAK_ALL); }, 5.0, 0.);
	ev_timer_start(l.loop, &stopper);
	pool.submit([] {},
	            [&] {
			    done = true;
			    ev_timer_stop(l.loop, &stopper);
		    });
	auto start = std::chrono::steady_clock::now();
	ev_run(l.loop, 0);  // returns once the timer is stopped by done
	CHECK(done);
	CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(4));
}

TEST_CASE("worker_pool: destructor with queued jobs does not hang") {
	Loop l;
	std::atomic<int> work_ran{0};
	int done_ran = 0;
	auto start = std::chrono::steady_clock::now();
	{
		WorkerPool pool(l.loop, 1);
		for (int i = 0; i < 50; ++i) {
			pool.submit(
			    [&] {
				    std::this_thread::sleep_for(std::chrono::microseconds(200));
				    ++work_ran;
			    },
			    [&] { ++done_ran; });
		}
	}  // no drain: completions are dropped
	CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
	// Queued work still runs before the threads stop; done never does.
	CHECK(work_ran == 50);
	CHECK(done_ran == 0);
	// The loop is usable after the pool is gone (watcher stopped, refcount
	// restored): nothing is left active.
	CHECK(ev_run(l.loop, EVRUN_NOWAIT) == 0);
}

TEST_CASE("worker_pool: with several threads the destructor runs every queued job, then stops them") {
	Loop l;
	std::atomic<int> work_ran{0};
	{
		WorkerPool pool(l.loop, 4);
		for (int i = 0; i < 400; ++i) pool.submit([&] { ++work_ran; }, [] {});
	}
	CHECK(work_ran == 400);
}
