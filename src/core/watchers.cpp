#include "core/watchers.h"

#include <exception>
#include <memory>

#include "util/log.h"

namespace tern::core {

namespace {
// No exception may unwind through libev's C frames: the last boundary for
// every callback of the loop. Connections have their own before this one.
template <class F>
void guarded(F&& f) {
	try {
		f();
	} catch (const std::exception& e) {
		log::error("unhandled exception in an event callback", {{"error", e.what()}});
	} catch (...) {
		log::error("unhandled exception in an event callback");
	}
}
}  // namespace

IoWatcher::IoWatcher(struct ev_loop* loop, Callback cb) : loop_(loop), cb_(std::move(cb)) {
	ev_init(&w_, &IoWatcher::trampoline);
	w_.data = this;
}

void IoWatcher::set(int fd, int events) {
	if (active_ && events == events_ && w_.fd == fd) {
		paused_ = false;
		return;
	}
	stop();
	events_ = events;
	if (events == 0 || fd < 0) return;
	ev_io_set(&w_, fd, events);
	ev_io_start(loop_, &w_);
	active_ = true;
}

void IoWatcher::stop() {
	paused_ = false;
	if (!active_) return;
	ev_io_stop(loop_, &w_);
	active_ = false;
}

void IoWatcher::trampoline(struct ev_loop*, ev_io* w, int revents) {
	auto* self = static_cast<IoWatcher*>(w->data);
	if (self->paused_) {
		// Ready while nobody wants its events: level-triggered, it would
		// wake the loop again and again; stopped now, restarted by set().
		self->stop();
		return;
	}
	guarded([&] { self->cb_(revents); });
}

TimerWatcher::TimerWatcher(struct ev_loop* loop, Callback cb) : loop_(loop), cb_(std::move(cb)) {
	ev_init(&w_, &TimerWatcher::trampoline);
	w_.data = this;
}

void TimerWatcher::start(double seconds) {
	ev_timer_stop(loop_, &w_);
	ev_timer_set(&w_, seconds, 0.);
	ev_timer_start(loop_, &w_);
}

void TimerWatcher::stop() { ev_timer_stop(loop_, &w_); }

void TimerWatcher::trampoline(struct ev_loop*, ev_timer* w, int) {
	guarded([&] { static_cast<TimerWatcher*>(w->data)->cb_(); });
}

SignalWatcher::SignalWatcher(struct ev_loop* loop, int signum, Callback cb) : loop_(loop), cb_(std::move(cb)) {
	ev_signal_init(&w_, &SignalWatcher::trampoline, signum);
	w_.data = this;
	ev_signal_start(loop_, &w_);
}

SignalWatcher::~SignalWatcher() {
	if (unrefed_) ev_ref(loop_);
	ev_signal_stop(loop_, &w_);
}

void SignalWatcher::trampoline(struct ev_loop*, ev_signal* w, int) {
	guarded([&] { static_cast<SignalWatcher*>(w->data)->cb_(); });
}

void run_soon(struct ev_loop* loop, std::function<void()> fn) {
	auto* held = new std::function<void()>(std::move(fn));
	ev_once(
	    loop, -1, 0, 0.0,
	    [](int, void* arg) {
		    std::unique_ptr<std::function<void()>> run(static_cast<std::function<void()>*>(arg));
		    guarded(*run);
	    },
	    held);
}

}  // namespace tern::core
