// One HTTPS GET on the loop, for the queue's MTA-STS policy fetch (RFC
// 8461 3.3): a non-blocking connection to one address, TLS with the
// certificate verified against the given trust (chain and host name), the
// request, and the response's bytes up to the peer's close, a size cap or
// the moment the caller's `complete` says the response is whole. HTTP is
// not interpreted here: the caller parses what was read. Every step has
// one deadline for the whole exchange.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/watchers.h"
#include "net/transport.h"

namespace tern::net {

struct HttpsGetRequest {
	std::string ip;                                  // the address to connect to
	int port = 443;                                  // RFC 8461 3.3: HTTPS on its default port
	std::string host;                                // SNI, Host field and the name the certificate must carry
	std::string path;                                // "/.well-known/mta-sts.txt"
	std::shared_ptr<const TlsClientContext> trust;   // with a CA file: the chain must verify
	double timeout_s = 60;                           // the whole exchange
	size_t max_bytes = 64 * 1024;                    // more than this is an error
	std::function<bool(std::string_view)> complete;  // optional: the response is whole
};

struct HttpsGetResult {
	std::string error;  // empty: `response` holds what the server sent
	std::string response;
};

using HttpsGetDone = std::function<void(HttpsGetResult)>;

class HttpsGet;

// The caller's hold on a request: dropping it (or cancel()) stops the
// request and its `done` never runs, so a result can never reach an owner
// that is gone.
class HttpsGetHandle {
public:
	HttpsGetHandle() = default;
	explicit HttpsGetHandle(std::weak_ptr<HttpsGet> get) : get_(std::move(get)) {}
	~HttpsGetHandle() { cancel(); }
	HttpsGetHandle(HttpsGetHandle&&) noexcept = default;
	HttpsGetHandle& operator=(HttpsGetHandle&& other) noexcept;
	HttpsGetHandle(const HttpsGetHandle&) = delete;
	HttpsGetHandle& operator=(const HttpsGetHandle&) = delete;
	void cancel();

private:
	std::weak_ptr<HttpsGet> get_;
};

// Starts the request. `done` runs at most once, later, from the loop (never
// inside this call), unless the handle is dropped first; the request keeps
// itself alive until then. The loop must outlive it.
[[nodiscard]] HttpsGetHandle https_get(struct ev_loop* loop, HttpsGetRequest request, HttpsGetDone done);

}  // namespace tern::net
