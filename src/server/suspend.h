// Definition of Connection::suspend (declared in session.h); it needs the
// complete Server, so it lives apart from session.h to avoid an include cycle.
#pragma once
#include "server/message_file.h"
#include "server/server.h"
#include "server/session.h"
#include "util/assert.h"

#include <functional>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>


namespace tern::server {

template <class F>
auto Connection::suspend(F f) {
	enter_state(SessionState::waiting);
	flags.awaiting_completion = true;
	arm_deadline();
	return [server = &srv, h = self, f = std::move(f)](auto&&... results) mutable {
		auto deliver = [server, h](F& fn, auto&... rs) {
			server->with_conn(h, [&](Connection& c) {
				// The wait timed out and the session is closing: nothing to resume.
				if (!c.flags.awaiting_completion) return;
				c.flags.awaiting_completion = false;
				c.resume([&] { return fn(c, rs...); });
			});
		};
		if (!server->in_connection(h)) {
			deliver(f, results...);
			return;
		}
		// The job completed inside the call that started it (canned DNS
		// answers): the answer waits for the loop, so a completion never
		// runs beneath a frame of its own connection.
		server->post([deliver, f = std::move(f),
		              saved = std::make_tuple(std::decay_t<decltype(results)>(results)...)]() mutable {
			std::apply([&](auto&... rs) { deliver(f, rs...); }, saved);
		});
	};
}

template <class F>
auto Connection::suspend_owning_file(std::string path, F f) {
	auto resumed = std::make_shared<bool>(false);
	auto cont = suspend([resumed, f = std::move(f)](Connection& c, auto&... results) mutable {
		*resumed = true;
		return f(c, results...);
	});
	return [cont = std::move(cont), resumed, path = std::move(path), server = &srv, h = self,
	        id = cid](auto&&... results) mutable {
		// A worker's completion runs on the loop, never inside a frame of
		// its connection: cont() has run `f` by now, or never will.
		TERN_ASSERT(!server->in_connection(h), "a worker completion runs from the loop");
		cont(results...);
		if (!*resumed) remove_file_on_worker(server->workers(), path, id);
	};
}

template <class... Results, class Start, class Next>
void Connection::continue_when(Start start, Next next) {
	static_assert(std::is_void_v<std::invoke_result_t<Next&, Connection&, const Results&...>>,
	              "continue_when: `next` hands the command on, it returns no Outcome");
	struct Answer {
		bool start_returned = false;
		std::optional<std::tuple<std::decay_t<Results>...>> at_once;
		std::function<void(const Results&...)> later;  // suspend()'s callback
	};
	auto answer = std::make_shared<Answer>();
	start(std::function<void(const Results&...)>([answer](const Results&... results) {
		if (!answer->start_returned) {
			answer->at_once.emplace(results...);
			return;
		}
		// Once only: the callback lets go of what it holds.
		auto later = std::move(answer->later);
		if (later) later(results...);
	}));
	answer->start_returned = true;
	if (answer->at_once) {
		std::apply([&](const auto&... results) { next(*this, results...); }, *answer->at_once);
		return;
	}
	answer->later = suspend(std::move(next));
}

}  // namespace tern::server
