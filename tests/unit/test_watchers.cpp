// IoWatcher: pausing a watcher costs nothing until its fd becomes ready.
#include <doctest/doctest.h>

#include <ev.h>
#include <unistd.h>

#include <stdexcept>

#include "core/watchers.h"

using tern::core::IoWatcher;

namespace {

struct Loop {
	struct ev_loop* loop = ev_loop_new(EVFLAG_AUTO);
	~Loop() { ev_loop_destroy(loop); }
};

struct Pipe {
	int fds[2] = {-1, -1};
	Pipe() { REQUIRE(pipe(fds) == 0); }
	~Pipe() {
		close(fds[0]);
		close(fds[1]);
	}
};

}  // namespace

TEST_CASE("watchers: a paused watcher delivers nothing and set() resumes it") {
	Loop l;
	Pipe p;
	int calls = 0;
	IoWatcher w(l.loop, [&](int) { ++calls; });
	w.set(p.fds[0], EV_READ);
	CHECK(w.events() == EV_READ);
	w.pause();
	CHECK(w.events() == 0);
	// Wanted again before anything happened: just resumed.
	w.set(p.fds[0], EV_READ);
	CHECK(w.events() == EV_READ);
	REQUIRE(write(p.fds[1], "x", 1) == 1);
	ev_run(l.loop, EVRUN_NOWAIT);
	CHECK(calls == 1);

	// Ready while paused: no callback, and the watcher stops for real, so
	// the level-triggered fd does not wake the loop again.
	w.pause();
	ev_run(l.loop, EVRUN_NOWAIT);
	CHECK(calls == 1);
	CHECK(w.events() == 0);
	CHECK(ev_run(l.loop, EVRUN_NOWAIT) == 0);  // nothing active any more
	// Set again, it sees the byte still waiting.
	w.set(p.fds[0], EV_READ);
	ev_run(l.loop, EVRUN_NOWAIT);
	CHECK(calls == 2);
	w.stop();
	CHECK(w.events() == 0);
}

TEST_CASE("watchers: pausing a watcher that is not active does nothing") {
	Loop l;
	Pipe p;
	int calls = 0;
	IoWatcher w(l.loop, [&](int) { ++calls; });
	w.pause();
	CHECK(w.events() == 0);
	REQUIRE(write(p.fds[1], "x", 1) == 1);
	w.set(p.fds[0], EV_READ);
	ev_run(l.loop, EVRUN_NOWAIT);
	CHECK(calls == 1);
}

TEST_CASE("watchers: run_soon runs once, from the next iteration, never inside the call") {
	Loop l;
	int runs = 0;
	tern::core::run_soon(l.loop, [&] { runs++; });
	CHECK(runs == 0);  // not inside the call
	ev_run(l.loop, EVRUN_NOWAIT);
	CHECK(runs == 1);
	ev_run(l.loop, EVRUN_NOWAIT);
	CHECK(runs == 1);  // once
	// An exception stays inside: the loop goes on.
	tern::core::run_soon(l.loop, [] { throw std::runtime_error("test"); });
	tern::core::run_soon(l.loop, [&] { runs++; });
	ev_run(l.loop, EVRUN_NOWAIT);
	CHECK(runs == 2);
}
