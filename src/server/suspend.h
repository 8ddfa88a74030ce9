// Definition of Connection::suspend (declared in session.h); it needs the
// complete Server, so it lives apart from session.h to avoid an include cycle.
#pragma once
#include "server/server.h"
#include "server/session.h"
#include "util/assert.h"

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

}  // namespace tern::server
