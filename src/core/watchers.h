// RAII wrappers for the libev watchers the loop thread uses. Each owns its
// watcher and stops it on destruction, so an object that dies can never be
// called back. Callbacks are std::function with small captures (a pointer
// and a ConnHandle fit the inline storage, so a watcher costs no heap).
#pragma once
#include <ev.h>

#include <functional>

namespace tern::core {

class IoWatcher {
public:
	using Callback = std::function<void(int revents)>;
	IoWatcher(struct ev_loop* loop, Callback cb);
	~IoWatcher() { stop(); }
	IoWatcher(const IoWatcher&) = delete;
	IoWatcher& operator=(const IoWatcher&) = delete;

	// Sets fd and the EV_READ/EV_WRITE mask; restarts the watcher if the mask
	// changed. A mask of 0 stops it.
	void set(int fd, int events);
	// Delivers no events until the next set(), without telling the kernel:
	// libev stops and restarts a watcher with an epoll_ctl each time, so a
	// connection that waits on a job (no input wanted for a moment) and
	// then wants the same events again costs no system call. Should the fd
	// become ready while paused, the watcher stops for real then. The fd
	// must stay open until the next set() or stop().
	void pause() { paused_ = active_; }
	void stop();
	int events() const { return active_ && !paused_ ? events_ : 0; }

private:
	static void trampoline(struct ev_loop*, ev_io* w, int revents);
	ev_io w_;
	struct ev_loop* loop_;
	Callback cb_;
	int events_ = 0;
	bool active_ = false;
	bool paused_ = false;
};

class TimerWatcher {
public:
	using Callback = std::function<void()>;
	TimerWatcher(struct ev_loop* loop, Callback cb);
	~TimerWatcher() { stop(); }
	TimerWatcher(const TimerWatcher&) = delete;
	TimerWatcher& operator=(const TimerWatcher&) = delete;

	// (Re)starts a one-shot timer firing `seconds` from now.
	void start(double seconds);
	void stop();
	bool active() const { return ev_is_active(&w_); }

private:
	static void trampoline(struct ev_loop*, ev_timer* w, int revents);
	ev_timer w_;
	struct ev_loop* loop_;
	Callback cb_;
};

class SignalWatcher {
public:
	using Callback = std::function<void()>;
	SignalWatcher(struct ev_loop* loop, int signum, Callback cb);
	~SignalWatcher();
	SignalWatcher(const SignalWatcher&) = delete;
	SignalWatcher& operator=(const SignalWatcher&) = delete;
	// Signal watchers must not keep the loop alive on their own.
	void unref() {
		ev_unref(loop_);
		unrefed_ = true;
	}

private:
	static void trampoline(struct ev_loop*, ev_signal* w, int revents);
	ev_signal w_;
	struct ev_loop* loop_;
	Callback cb_;
	bool unrefed_ = false;
};

// Runs `fn` once from the loop's next iteration, never inside the caller:
// how a client that finished inside its own callbacks hands its result
// over (the closure keeps the client alive until then).
void run_soon(struct ev_loop* loop, std::function<void()> fn);

}  // namespace tern::core
