// Definition of Connection::suspend (declared in session.h); it needs the
// complete Server, so it lives apart from session.h to avoid an include cycle.
#pragma once
#include "server/server.h"
#include "server/session.h"


namespace tern::server {

template <class F>
auto Connection::suspend(F f) {
	state = SessionState::waiting;
	async_pending = true;
	arm_deadline();
	return [server = &srv, h = self, f = std::move(f)](auto&&... results) mutable {
		server->with_conn(h, [&](Connection& c) {
			c.async_pending = false;
			c.resume([&] { f(c, results...); });
		});
	};
}

}  // namespace tern::server
